# Shared helpers for the scripts in this folder (sourced, not run).

# Run as root, or through sudo when we are not.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the build, the tests and the demo need. Installed only when
# one is missing, after an apt-get update.
OUTBOX_PACKAGES="build-essential postgresql-15 postgresql-server-dev-15 postgresql-contrib
                 librdkafka-dev kcat libipc-run-perl procps
                 python3-psycopg2 python3-confluent-kafka"

install_packages() {
    local missing=()
    local p
    for p in $OUTBOX_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

build_and_install() {
    echo "== building and installing outbox_ext"
    make -s clean >/dev/null 2>&1 || true
    make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    as_root make -s install PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null
}
