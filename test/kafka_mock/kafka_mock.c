/*
 * kafka_mock: a local Kafka for outbox_ext's tests, demo and benchmarks.
 *
 * A standalone process around librdkafka's mock cluster (rdkafka_mock.h,
 * librdkafka 2.0.2): real Kafka protocol on 127.0.0.1, in memory.
 *
 *   kafka_mock serve --dir DIR [--brokers N] [--topic NAME[:PARTITIONS]]...
 *                    [--keep-nagle] [--debug]
 *   kafka_mock ctl --dir DIR [--wait SECONDS] [--timeout SECONDS] COMMAND...
 *   kafka_mock selftest [--dir DIR | --bootstrap LIST] [--count N]
 *                       [--batch N] [--rounds N] [--topic NAME[:ERRNAME]]...
 *
 * serve writes DIR/pid, then DIR/bootstrap (each atomically: temp file +
 * rename), then opens the control socket DIR/control: once DIR/bootstrap
 * exists the brokers are up, and once "ctl ping" answers everything is
 * ready.  It runs until "ctl quit", SIGTERM or SIGINT, then removes the
 * three files (DIR/pid last, after the brokers are gone) and exits 0.
 *
 * The control protocol is one line per connection: the client sends
 * "COMMAND ARG...\n", the server answers one line, "ok[ DETAIL]\n" or
 * "error: MESSAGE\n", and closes.  See README.md for the command list and
 * for how each fault behaves in the 2.0.2 mock.
 */
#define _GNU_SOURCE

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_LINE 4096
#define MAX_ARGS 64
#define MAX_CLIENTS 64
#define CLIENT_TIMEOUT_MS 10000
#define MAX_TOPIC_LEN 249
#define MAX_REJECTED 64
/* reject_topic keeps the spare broker's Produce error stack between these. */
#define JAIL_LOW 2000
#define JAIL_HIGH 4000
#define JAIL_TICK_MS 50

static const char *progname = "kafka_mock";

/* ------------------------------------------------------------------------
 * Small utilities
 * ------------------------------------------------------------------------ */

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "%s[%d]: ", progname, (int)getpid());
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Parses a whole decimal integer in [min, max]. */
static int parse_long(const char *s, long min, long max, long *out) {
        char *end;
        long v;

        if (!s || !*s)
                return -1;
        errno = 0;
        v     = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

static int valid_topic(const char *t) {
        size_t n = strlen(t);

        if (n == 0 || n > MAX_TOPIC_LEN || !strcmp(t, ".") || !strcmp(t, ".."))
                return 0;
        for (; *t; t++)
                if (!isalnum((unsigned char)*t) && *t != '.' && *t != '_' &&
                    *t != '-')
                        return 0;
        return 1;
}

static int path_join(char *dst, size_t size, const char *dir,
                     const char *name) {
        int r = snprintf(dst, size, "%s/%s", dir, name);
        return (r < 0 || (size_t)r >= size) ? -1 : 0;
}

/* Fills a sockaddr_un for DIR/control; -1 if the path is too long. */
static int control_addr(const char *dir, struct sockaddr_un *sun) {
        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        return path_join(sun->sun_path, sizeof(sun->sun_path), dir, "control");
}

/* Writes CONTENT to DIR/NAME atomically (DIR/.NAME.tmp + rename). */
static int write_file_atomic(const char *dir, const char *name,
                             const char *content) {
        char tmp[PATH_MAX], final[PATH_MAX], tname[NAME_MAX];
        size_t len = strlen(content), off = 0;
        int fd;

        snprintf(tname, sizeof(tname), ".%s.tmp", name);
        if (path_join(tmp, sizeof(tmp), dir, tname) ||
            path_join(final, sizeof(final), dir, name)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd == -1)
                return -1;
        while (off < len) {
                ssize_t w = write(fd, content + off, len - off);
                if (w == -1) {
                        if (errno == EINTR)
                                continue;
                        close(fd);
                        unlink(tmp);
                        return -1;
                }
                off += (size_t)w;
        }
        if (close(fd) == -1 || rename(tmp, final) == -1) {
                unlink(tmp);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * Name tables: Kafka ApiKeys and rd_kafka_resp_err_t
 * ------------------------------------------------------------------------ */

/* injectable: the 2.0.2 mock handler consults the error stacks
 * (rd_kafka_mock_next_request_error) for this request type. */
static const struct {
        const char *name;
        int16_t key;
        int injectable;
} api_keys[] = {
    {"Produce", 0, 1},
    {"Fetch", 1, 1},
    {"ListOffsets", 2, 1},
    {"Metadata", 3, 0},
    {"LeaderAndIsr", 4, 0},
    {"StopReplica", 5, 0},
    {"UpdateMetadata", 6, 0},
    {"ControlledShutdown", 7, 0},
    {"OffsetCommit", 8, 1},
    {"OffsetFetch", 9, 1},
    {"FindCoordinator", 10, 1},
    {"JoinGroup", 11, 1},
    {"Heartbeat", 12, 1},
    {"LeaveGroup", 13, 1},
    {"SyncGroup", 14, 1},
    {"DescribeGroups", 15, 0},
    {"ListGroups", 16, 0},
    {"SaslHandshake", 17, 0},
    {"ApiVersions", 18, 1},
    {"ApiVersion", 18, 1},
    {"CreateTopics", 19, 0},
    {"DeleteTopics", 20, 0},
    {"DeleteRecords", 21, 0},
    {"InitProducerId", 22, 1},
    {"OffsetForLeaderEpoch", 23, 0},
    {"AddPartitionsToTxn", 24, 1},
    {"AddOffsetsToTxn", 25, 1},
    {"EndTxn", 26, 1},
    {"WriteTxnMarkers", 27, 0},
    {"TxnOffsetCommit", 28, 1},
    {"DescribeAcls", 29, 0},
    {"CreateAcls", 30, 0},
    {"DeleteAcls", 31, 0},
    {"DescribeConfigs", 32, 0},
    {"AlterConfigs", 33, 0},
    {"AlterReplicaLogDirs", 34, 0},
    {"DescribeLogDirs", 35, 0},
    {"SaslAuthenticate", 36, 0},
    {"CreatePartitions", 37, 0},
    {"DeleteGroups", 42, 0},
    {"ElectLeaders", 43, 0},
    {"IncrementalAlterConfigs", 44, 0},
    {"OffsetDelete", 47, 0},
};

#define N_API_KEYS (sizeof(api_keys) / sizeof(api_keys[0]))

/* Accepts a name (case-insensitive) or a number; requires that the 2.0.2
 * mock actually injects errors for it. */
static int parse_api_key(const char *s, int16_t *key, char *err,
                         size_t errsize) {
        long v;
        size_t i;

        for (i = 0; i < N_API_KEYS; i++) {
                if (strcasecmp(s, api_keys[i].name) == 0 ||
                    (parse_long(s, 0, 32767, &v) == 0 &&
                     v == api_keys[i].key)) {
                        if (!api_keys[i].injectable) {
                                snprintf(err, errsize,
                                         "the librdkafka 2.0.2 mock never "
                                         "injects errors into %s requests "
                                         "(Metadata: use topic_error or "
                                         "broker_down)",
                                         api_keys[i].name);
                                return -1;
                        }
                        *key = api_keys[i].key;
                        return 0;
                }
        }
        snprintf(err, errsize,
                 "unknown API \"%s\" (e.g. Produce, Fetch, ListOffsets, "
                 "OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, "
                 "Heartbeat, SyncGroup, LeaveGroup, InitProducerId, "
                 "AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, "
                 "EndTxn, ApiVersions or a number)",
                 s);
        return -1;
}

/* Accepts TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_
 * FAILED, _TRANSPORT, RD_KAFKA_RESP_ERR__TRANSPORT (case-insensitive) or a
 * number, matched against librdkafka's own error table. */
static int parse_err(const char *s, rd_kafka_resp_err_t *out) {
        static const char prefix[] = "RD_KAFKA_RESP_ERR_";
        const struct rd_kafka_err_desc *descs;
        size_t cnt, i;
        long v;

        if (strncasecmp(s, prefix, sizeof(prefix) - 1) == 0)
                s += sizeof(prefix) - 1;
        if (!*s)
                return -1;

        rd_kafka_get_err_descs(&descs, &cnt);
        for (i = 0; i < cnt; i++) {
                if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
                        *out = descs[i].code;
                        return 0;
                }
        }
        if (parse_long(s, INT16_MIN, INT16_MAX, &v) == 0) {
                for (i = 0; i < cnt; i++) {
                        if (descs[i].name && descs[i].code == v) {
                                *out = descs[i].code;
                                return 0;
                        }
                }
        }
        return -1;
}

/* ------------------------------------------------------------------------
 * TCP socket inspection (diagnostic "sockets" command)
 * ------------------------------------------------------------------------ */

static void count_tcp_sockets(int *listening, int *connected,
                              int *connected_nodelay) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        *listening = *connected = *connected_nodelay = 0;
        if (!d)
                return;
        while ((de = readdir(d))) {
                long fdl;
                int fd, domain, type, acc, nodelay;
                socklen_t len;
                struct sockaddr_storage ss;
                socklen_t sslen = sizeof(ss);

                if (parse_long(de->d_name, 0, INT_MAX, &fdl))
                        continue;
                fd = (int)fdl;
                if (fd == dirfd(d))
                        continue;
                len = sizeof(domain);
                if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) ||
                    (domain != AF_INET && domain != AF_INET6))
                        continue;
                len = sizeof(type);
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) ||
                    type != SOCK_STREAM)
                        continue;
                len = sizeof(acc);
                if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 &&
                    acc) {
                        (*listening)++;
                        continue;
                }
                if (getpeername(fd, (struct sockaddr *)&ss, &sslen))
                        continue;
                (*connected)++;
                len = sizeof(nodelay);
                if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) ==
                        0 &&
                    nodelay)
                        (*connected_nodelay)++;
        }
        closedir(d);
}

/* ------------------------------------------------------------------------
 * serve
 * ------------------------------------------------------------------------ */

struct client {
        int fd; /* -1: free slot */
        size_t len;
        int64_t deadline_us;
        char buf[MAX_LINE];
};

struct rejected {
        char topic[MAX_TOPIC_LEN + 1];
        int broker;
        int partitions;
        rd_kafka_resp_err_t err;
};

struct server {
        const char *dir;
        char path_control[PATH_MAX];
        char path_bootstrap[PATH_MAX];
        char path_pid[PATH_MAX];
        int created_control, created_pid, created_bootstrap;

        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc;
        int nbrokers;
        int data_brokers; /* min(3, N): 2.0.2 places partitions on 1..this */
        int keep_nagle;
        char *broker_up; /* [1..nbrokers] */
        /* Spare brokers used by reject_topic: jail_err[id] is the error the
         * spare broker id returns for every Produce (0: unused). */
        rd_kafka_resp_err_t *jail_err;

        struct rejected rejected[MAX_REJECTED];
        int nrejected;

        int dir_fd; /* flocked while we serve DIR */
        int listen_fd;
        int sig_fd;
        struct client clients[MAX_CLIENTS];
        int quit;
};

typedef int (*cmd_fn)(struct server *s, int argc, char **argv, char *reply,
                      size_t rsize);

static int reply_err(char *reply, size_t rsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reply_err(char *reply, size_t rsize, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(reply, rsize, "error: ");
        va_start(ap, fmt);
        vsnprintf(reply + n, rsize - (size_t)n, fmt, ap);
        va_end(ap);
        return -1;
}

static int reply_ok(char *reply, size_t rsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reply_ok(char *reply, size_t rsize, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(reply, rsize, "ok");
        if (fmt && *fmt) {
                n += snprintf(reply + n, rsize - (size_t)n, " ");
                va_start(ap, fmt);
                vsnprintf(reply + n, rsize - (size_t)n, fmt, ap);
                va_end(ap);
        }
        return 0;
}

/* "all" or -1 means every broker. */
static int parse_broker(struct server *s, const char *a, int allow_all,
                        int32_t *id) {
        long v;
        if (allow_all && (!strcasecmp(a, "all") || !strcmp(a, "-1"))) {
                *id = -1;
                return 0;
        }
        if (parse_long(a, 1, s->nbrokers, &v))
                return -1;
        *id = (int32_t)v;
        return 0;
}

static int cmd_ping(struct server *s, int argc, char **argv, char *reply,
                    size_t rsize) {
        (void)s;
        (void)argc;
        (void)argv;
        return reply_ok(reply, rsize, NULL);
}

static int cmd_quit(struct server *s, int argc, char **argv, char *reply,
                    size_t rsize) {
        (void)argc;
        (void)argv;
        s->quit = 1;
        return reply_ok(reply, rsize, NULL);
}

static int cmd_broker_updown(struct server *s, int argc, char **argv,
                             char *reply, size_t rsize) {
        int up = !strcmp(argv[0], "broker_up");
        int32_t id;
        rd_kafka_resp_err_t err;
        int i;

        if (argc != 2 || parse_broker(s, argv[1], 1, &id))
                return reply_err(reply, rsize, "usage: %s ID (1..%d or all)",
                                 argv[0], s->nbrokers);
        err = up ? rd_kafka_mock_broker_set_up(s->mc, id)
                 : rd_kafka_mock_broker_set_down(s->mc, id);
        if (err)
                return reply_err(reply, rsize, "%s", rd_kafka_err2name(err));
        for (i = 1; i <= s->nbrokers; i++)
                if (id == -1 || id == i)
                        s->broker_up[i] = (char)up;
        return reply_ok(reply, rsize, NULL);
}

/* Parses "COUNT ERR [ERR...]" into errs (cycled if fewer names than COUNT). */
static int parse_err_list(int argc, char **argv, rd_kafka_resp_err_t **errsp,
                          size_t *cntp, char *reply, size_t rsize) {
        long cnt;
        int nnames = argc - 1, i;
        rd_kafka_resp_err_t *names, *errs;

        if (argc < 2 || parse_long(argv[0], 1, 100000, &cnt))
                return reply_err(reply, rsize,
                                 "expected COUNT (1..100000) and at least one "
                                 "error name");
        if (nnames > cnt)
                return reply_err(reply, rsize,
                                 "%d error names but COUNT is %ld", nnames,
                                 cnt);
        names = calloc((size_t)nnames, sizeof(*names));
        errs  = calloc((size_t)cnt, sizeof(*errs));
        if (!names || !errs) {
                free(names);
                free(errs);
                return reply_err(reply, rsize, "out of memory");
        }
        for (i = 0; i < nnames; i++) {
                if (parse_err(argv[1 + i], &names[i])) {
                        free(names);
                        free(errs);
                        return reply_err(reply, rsize, "unknown error \"%s\"",
                                         argv[1 + i]);
                }
        }
        for (i = 0; i < cnt; i++)
                errs[i] = names[i % nnames];
        free(names);
        *errsp = errs;
        *cntp  = (size_t)cnt;
        return 0;
}

static int cmd_push_errors(struct server *s, int argc, char **argv,
                           char *reply, size_t rsize) {
        int16_t key;
        rd_kafka_resp_err_t *errs;
        size_t cnt;
        char emsg[512];

        if (argc < 4)
                return reply_err(reply, rsize,
                                 "usage: push_errors APIKEY COUNT ERRNAME...");
        if (parse_api_key(argv[1], &key, emsg, sizeof(emsg)))
                return reply_err(reply, rsize, "%s", emsg);
        if (parse_err_list(argc - 2, argv + 2, &errs, &cnt, reply, rsize))
                return -1;
        rd_kafka_mock_push_request_errors_array(s->mc, key, cnt, errs);
        free(errs);
        return reply_ok(reply, rsize, NULL);
}

static int cmd_broker_push_errors(struct server *s, int argc, char **argv,
                                  char *reply, size_t rsize) {
        int32_t id;
        int16_t key;
        rd_kafka_resp_err_t *errs, err;
        size_t cnt, i;
        char emsg[512];

        if (argc < 5 || parse_broker(s, argv[1], 0, &id))
                return reply_err(reply, rsize,
                                 "usage: broker_push_errors ID APIKEY COUNT "
                                 "ERRNAME...");
        if (id > s->data_brokers && s->jail_err[id])
                return reply_err(reply, rsize,
                                 "broker %d is in use by reject_topic", id);
        if (parse_api_key(argv[2], &key, emsg, sizeof(emsg)))
                return reply_err(reply, rsize, "%s", emsg);
        if (parse_err_list(argc - 3, argv + 3, &errs, &cnt, reply, rsize))
                return -1;
        for (i = 0; i < cnt; i++) {
                err = rd_kafka_mock_broker_push_request_error_rtts(
                    s->mc, id, key, 1, errs[i], 0);
                if (err) {
                        free(errs);
                        return reply_err(reply, rsize, "%s",
                                         rd_kafka_err2name(err));
                }
        }
        free(errs);
        /* 2.0.2 looks at the broker's stack first and, if one exists for
         * this ApiKey (even empty), never at the cluster's. */
        return reply_ok(reply, rsize,
                        "(from now on cluster-wide push_errors %s no longer "
                        "reach broker %d)",
                        argv[2], (int)id);
}

static int cmd_clear_errors(struct server *s, int argc, char **argv,
                            char *reply, size_t rsize) {
        int16_t key;
        char emsg[512];

        if (argc != 2)
                return reply_err(reply, rsize, "usage: clear_errors APIKEY");
        if (parse_api_key(argv[1], &key, emsg, sizeof(emsg)))
                return reply_err(reply, rsize, "%s", emsg);
        rd_kafka_mock_clear_request_errors(s->mc, key);
        return reply_ok(reply, rsize, NULL);
}

static int cmd_topic_error(struct server *s, int argc, char **argv,
                           char *reply, size_t rsize) {
        rd_kafka_resp_err_t err;

        if (argc != 3)
                return reply_err(reply, rsize,
                                 "usage: topic_error TOPIC ERRNAME");
        if (!valid_topic(argv[1]))
                return reply_err(reply, rsize, "invalid topic name");
        if (parse_err(argv[2], &err))
                return reply_err(reply, rsize, "unknown error \"%s\"",
                                 argv[2]);
        rd_kafka_mock_topic_set_error(s->mc, argv[1], err);
        return reply_ok(reply, rsize, NULL);
}

static rd_kafka_resp_err_t create_topic(struct server *s, const char *topic,
                                        int partitions, int replication) {
        return rd_kafka_mock_topic_create(s->mc, topic, partitions,
                                          replication);
}

static int cmd_create_topic(struct server *s, int argc, char **argv,
                            char *reply, size_t rsize) {
        long parts, repl = s->data_brokers;
        rd_kafka_resp_err_t err;

        if (argc < 3 || argc > 4 || !valid_topic(argv[1]) ||
            parse_long(argv[2], 1, 100000, &parts) ||
            (argc == 4 && parse_long(argv[3], 1, s->nbrokers, &repl)))
                return reply_err(reply, rsize,
                                 "usage: create_topic TOPIC PARTITIONS "
                                 "[REPLICATION 1..%d]",
                                 s->nbrokers);
        err = create_topic(s, argv[1], (int)parts, (int)repl);
        if (err)
                return reply_err(reply, rsize, "%s", rd_kafka_err2name(err));
        return reply_ok(reply, rsize, NULL);
}

static int cmd_set_leader(struct server *s, int argc, char **argv,
                          char *reply, size_t rsize) {
        long part;
        int32_t id;
        rd_kafka_resp_err_t err;

        if (argc != 4 || !valid_topic(argv[1]) ||
            parse_long(argv[2], 0, 100000, &part))
                return reply_err(reply, rsize,
                                 "usage: set_leader TOPIC PARTITION ID|none");
        if (!strcasecmp(argv[3], "none") || !strcmp(argv[3], "-1"))
                id = -1;
        else if (parse_broker(s, argv[3], 0, &id))
                return reply_err(reply, rsize, "no broker \"%s\"", argv[3]);
        err = rd_kafka_mock_partition_set_leader(s->mc, argv[1], (int32_t)part,
                                                 id);
        if (err)
                return reply_err(reply, rsize, "%s", rd_kafka_err2name(err));
        return reply_ok(reply, rsize, NULL);
}

static int cmd_rtt(struct server *s, int argc, char **argv, char *reply,
                   size_t rsize) {
        int32_t id;
        long ms;
        rd_kafka_resp_err_t err;

        if (argc != 3 || parse_broker(s, argv[1], 1, &id) ||
            parse_long(argv[2], 0, 600000, &ms))
                return reply_err(reply, rsize, "usage: rtt ID|all MS");
        err = rd_kafka_mock_broker_set_rtt(s->mc, id, (int)ms);
        if (err)
                return reply_err(reply, rsize, "%s", rd_kafka_err2name(err));
        return reply_ok(reply, rsize, NULL);
}

/* Keeps each jail broker's Produce error stack topped up. */
static void jail_refill(struct server *s) {
        int id;

        for (id = s->data_brokers + 1; id <= s->nbrokers; id++) {
                size_t cnt = 0;
                rd_kafka_resp_err_t e = s->jail_err[id];

                if (!e)
                        continue;
                if (rd_kafka_mock_broker_error_stack_cnt(s->mc, id, 0, &cnt))
                        continue;
                while (cnt < JAIL_HIGH) {
                        rd_kafka_mock_broker_push_request_error_rtts(
                            s->mc, id, 0 /* Produce */, 8, e, 0, e, 0, e, 0, e,
                            0, e, 0, e, 0, e, 0, e, 0);
                        cnt += 8;
                }
        }
}

static int jail_active(const struct server *s) {
        return s->nrejected > 0;
}

static struct rejected *find_rejected(struct server *s, const char *topic) {
        int i;
        for (i = 0; i < s->nrejected; i++)
                if (!strcmp(s->rejected[i].topic, topic))
                        return &s->rejected[i];
        return NULL;
}

/* Moves every partition of TOPIC to broker ID (0: back to the data brokers,
 * round robin).  Returns the number of partitions, or -1. */
static int move_topic(struct server *s, const char *topic, int32_t id,
                      rd_kafka_resp_err_t *errp) {
        int32_t p;
        rd_kafka_resp_err_t err;

        for (p = 0; p < 100000; p++) {
                int32_t to = id ? id : (p % s->data_brokers) + 1;
                err = rd_kafka_mock_partition_set_leader(s->mc, topic, p, to);
                if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        return p;
                if (err) {
                        *errp = err;
                        return -1;
                }
        }
        return p;
}

static int cmd_accept_topic(struct server *s, int argc, char **argv,
                            char *reply, size_t rsize);

static int cmd_reject_topic(struct server *s, int argc, char **argv,
                            char *reply, size_t rsize) {
        rd_kafka_resp_err_t err, cerr = 0;
        struct rejected *r;
        int id, parts;

        if (argc != 3 || !valid_topic(argv[1]))
                return reply_err(reply, rsize,
                                 "usage: reject_topic TOPIC ERRNAME");
        if (parse_err(argv[2], &err))
                return reply_err(reply, rsize, "unknown error \"%s\"",
                                 argv[2]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                /* reject_topic TOPIC NO_ERROR is accept_topic TOPIC. */
                char *a[2] = {"accept_topic", argv[1]};
                return cmd_accept_topic(s, 2, a, reply, rsize);
        }
        if (err < 0)
                return reply_err(reply, rsize,
                                 "%s is a client-side error; a broker can "
                                 "only return Kafka protocol errors",
                                 rd_kafka_err2name(err));
        if (s->nbrokers <= s->data_brokers)
                return reply_err(reply, rsize,
                                 "reject_topic needs a spare broker: start "
                                 "serve with --brokers 4 or more (librdkafka "
                                 "2.0.2 places partitions only on brokers "
                                 "1..3)");
        if ((r = find_rejected(s, argv[1]))) {
                if (r->err == err)
                        return reply_ok(reply, rsize, "already rejected");
                return reply_err(reply, rsize,
                                 "%s is already rejected with %s; "
                                 "accept_topic it first",
                                 argv[1], rd_kafka_err2name(r->err));
        }
        if (s->nrejected == MAX_REJECTED)
                return reply_err(reply, rsize, "too many rejected topics");

        /* A spare broker already jailing with this error, else a fresh one.
         * A broker's error stack can't be cleared in 2.0.2, so a spare
         * broker keeps its error for the life of the mock. */
        for (id = s->data_brokers + 1; id <= s->nbrokers; id++)
                if (s->jail_err[id] == err)
                        break;
        if (id > s->nbrokers)
                for (id = s->data_brokers + 1; id <= s->nbrokers; id++)
                        if (!s->jail_err[id])
                                break;
        if (id > s->nbrokers)
                return reply_err(reply, rsize,
                                 "no spare broker left for a new error code "
                                 "(each of brokers %d..%d serves one error "
                                 "code); start with more --brokers",
                                 s->data_brokers + 1, s->nbrokers);

        /* Create it as auto-creation would (4 partitions) if missing, so the
         * partition probe below doesn't create a 1-partition topic. */
        cerr = create_topic(s, argv[1], 4, s->data_brokers);
        if (cerr && cerr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                return reply_err(reply, rsize, "create: %s",
                                 rd_kafka_err2name(cerr));

        /* Fill the error stack before any partition moves there. */
        s->jail_err[id] = err;
        jail_refill(s);

        parts = move_topic(s, argv[1], id, &cerr);
        if (parts < 0)
                return reply_err(reply, rsize, "set_leader: %s",
                                 rd_kafka_err2name(cerr));

        r = &s->rejected[s->nrejected++];
        snprintf(r->topic, sizeof(r->topic), "%s", argv[1]);
        r->broker     = id;
        r->partitions = parts;
        r->err        = err;
        return reply_ok(reply, rsize, "broker=%d partitions=%d", id, parts);
}

static int cmd_accept_topic(struct server *s, int argc, char **argv,
                            char *reply, size_t rsize) {
        struct rejected *r;
        rd_kafka_resp_err_t err = 0;

        if (argc != 2 || !valid_topic(argv[1]))
                return reply_err(reply, rsize, "usage: accept_topic TOPIC");
        if (!(r = find_rejected(s, argv[1])))
                return reply_ok(reply, rsize, "not rejected");
        if (move_topic(s, argv[1], 0, &err) < 0)
                return reply_err(reply, rsize, "set_leader: %s",
                                 rd_kafka_err2name(err));
        *r = s->rejected[--s->nrejected];
        return reply_ok(reply, rsize, NULL);
}

static int cmd_sockets(struct server *s, int argc, char **argv, char *reply,
                       size_t rsize) {
        int l, c, n;
        (void)s;
        (void)argc;
        (void)argv;
        count_tcp_sockets(&l, &c, &n);
        return reply_ok(reply, rsize,
                        "listening=%d connected=%d connected_nodelay=%d", l, c,
                        n);
}

static int cmd_status(struct server *s, int argc, char **argv, char *reply,
                      size_t rsize) {
        char buf[MAX_LINE];
        size_t off = 0;
        int i;
        (void)argc;
        (void)argv;

        buf[0] = '\0';
        for (i = 1; i <= s->nbrokers && off < sizeof(buf); i++)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%d:%s",
                                        i > 1 ? "," : "", i,
                                        s->broker_up[i] ? "up" : "down");
        if (off < sizeof(buf))
                off += (size_t)snprintf(buf + off, sizeof(buf) - off,
                                        " nagle=%s rejected=",
                                        s->keep_nagle ? "on" : "off");
        for (i = 0; i < s->nrejected && off < sizeof(buf); i++)
                off += (size_t)snprintf(
                    buf + off, sizeof(buf) - off, "%s%s:%s@%d",
                    i ? "," : "", s->rejected[i].topic,
                    rd_kafka_err2name(s->rejected[i].err),
                    s->rejected[i].broker);
        return reply_ok(reply, rsize, "bootstrap=%s brokers=%s",
                        rd_kafka_mock_cluster_bootstraps(s->mc), buf);
}

static int cmd_help(struct server *s, int argc, char **argv, char *reply,
                    size_t rsize);

static const struct {
        const char *name;
        cmd_fn fn;
        const char *usage;
} commands[] = {
    {"ping", cmd_ping, "ping"},
    {"quit", cmd_quit, "quit"},
    {"status", cmd_status, "status"},
    {"broker_down", cmd_broker_updown, "broker_down ID|all"},
    {"broker_up", cmd_broker_updown, "broker_up ID|all"},
    {"push_errors", cmd_push_errors, "push_errors APIKEY COUNT ERRNAME..."},
    {"broker_push_errors", cmd_broker_push_errors,
     "broker_push_errors ID APIKEY COUNT ERRNAME..."},
    {"clear_errors", cmd_clear_errors, "clear_errors APIKEY"},
    {"topic_error", cmd_topic_error, "topic_error TOPIC ERRNAME"},
    {"create_topic", cmd_create_topic,
     "create_topic TOPIC PARTITIONS [REPLICATION]"},
    {"set_leader", cmd_set_leader, "set_leader TOPIC PARTITION ID|none"},
    {"rtt", cmd_rtt, "rtt ID|all MS"},
    {"reject_topic", cmd_reject_topic, "reject_topic TOPIC ERRNAME"},
    {"accept_topic", cmd_accept_topic, "accept_topic TOPIC"},
    {"sockets", cmd_sockets, "sockets"},
    {"help", cmd_help, "help"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static int cmd_help(struct server *s, int argc, char **argv, char *reply,
                    size_t rsize) {
        size_t i, off = 0;
        char buf[MAX_LINE];
        (void)s;
        (void)argc;
        (void)argv;
        buf[0] = '\0';
        for (i = 0; i < N_COMMANDS && off < sizeof(buf); i++)
                off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
                                        i ? "; " : "", commands[i].usage);
        return reply_ok(reply, rsize, "%s", buf);
}

/* Executes one command line; writes a one-line reply (no newline). */
static void execute(struct server *s, char *line, char *reply, size_t rsize) {
        char *argv[MAX_ARGS], *save = NULL, *tok;
        int argc = 0;
        size_t i;

        for (tok = strtok_r(line, " \t\r", &save); tok;
             tok = strtok_r(NULL, " \t\r", &save)) {
                if (argc == MAX_ARGS) {
                        reply_err(reply, rsize, "too many arguments");
                        return;
                }
                argv[argc++] = tok;
        }
        if (argc == 0) {
                reply_err(reply, rsize, "empty command");
                return;
        }
        for (i = 0; i < N_COMMANDS; i++) {
                if (!strcmp(argv[0], commands[i].name)) {
                        commands[i].fn(s, argc, argv, reply, rsize);
                        return;
                }
        }
        reply_err(reply, rsize, "unknown command \"%s\" (try help)", argv[0]);
}

static void client_close(struct client *c) {
        if (c->fd != -1)
                close(c->fd);
        c->fd  = -1;
        c->len = 0;
}

static void client_reply(struct client *c, const char *reply) {
        char out[MAX_LINE + 2];
        size_t len = (size_t)snprintf(out, sizeof(out), "%s\n", reply), off = 0;

        if (len >= sizeof(out))
                len = sizeof(out) - 1;
        /* The reply is small: it fits the socket buffer.  Never block on a
         * client that stopped reading; drop the reply instead. */
        while (off < len) {
                ssize_t w = send(c->fd, out + off, len - off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w == -1) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                off += (size_t)w;
        }
}

/* Reads what the client sent; runs the command once a full line arrived. */
static void client_io(struct server *s, struct client *c) {
        char reply[MAX_LINE];
        char *nl;
        ssize_t r;

        for (;;) {
                r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
                         MSG_DONTWAIT);
                if (r > 0) {
                        c->len += (size_t)r;
                        c->buf[c->len] = '\0';
                        if (memchr(c->buf, '\n', c->len) ||
                            c->len == sizeof(c->buf) - 1)
                                break;
                        continue;
                }
                if (r == -1 && errno == EINTR)
                        continue;
                if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return; /* wait for more */
                /* EOF or error before a full line: the client went away
                 * mid-command; nothing is executed. */
                if (c->len > 0)
                        logmsg("control: client disconnected before "
                               "finishing its command; ignored");
                client_close(c);
                return;
        }

        c->buf[c->len] = '\0';
        nl             = memchr(c->buf, '\n', c->len);
        if (!nl) {
                reply_err(reply, sizeof(reply), "command longer than %d bytes",
                          MAX_LINE - 2);
        } else {
                char logline[MAX_LINE];
                *nl = '\0';
                snprintf(logline, sizeof(logline), "%s", c->buf);
                execute(s, c->buf, reply, sizeof(reply));
                logmsg("control: %s -> %s", logline, reply);
        }
        client_reply(c, reply);
        client_close(c);
}

static void accept_clients(struct server *s) {
        for (;;) {
                int fd = accept4(s->listen_fd, NULL, NULL,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
                int i;

                if (fd == -1) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return; /* EAGAIN, or EMFILE etc.: retry later */
                }
                for (i = 0; i < MAX_CLIENTS; i++)
                        if (s->clients[i].fd == -1)
                                break;
                if (i == MAX_CLIENTS) {
                        struct client tmp = {.fd = fd};
                        client_reply(&tmp, "error: busy, try again");
                        close(fd);
                        continue;
                }
                s->clients[i].fd          = fd;
                s->clients[i].len         = 0;
                s->clients[i].deadline_us = now_us() +
                                            (int64_t)CLIENT_TIMEOUT_MS * 1000;
        }
}

static void server_cleanup(struct server *s) {
        int i;

        /* bootstrap first: a reader that sees it may rely on the rest. */
        if (s->created_bootstrap)
                unlink(s->path_bootstrap);
        if (s->listen_fd != -1)
                close(s->listen_fd);
        if (s->created_control)
                unlink(s->path_control);
        for (i = 0; i < MAX_CLIENTS; i++)
                client_close(&s->clients[i]);
        if (s->mc)
                rd_kafka_mock_cluster_destroy(s->mc);
        if (s->rk)
                rd_kafka_destroy(s->rk);
        if (s->created_pid)
                unlink(s->path_pid);
        if (s->sig_fd != -1)
                close(s->sig_fd);
        if (s->dir_fd != -1)
                close(s->dir_fd); /* releases the flock */
        free(s->broker_up);
        free(s->jail_err);
}

/* Refuses to start over a live instance; removes stale files otherwise.
 * A live instance holds an flock on DIR itself: the kernel drops it when
 * the process dies in any way (SIGKILL included), so there is no lock file
 * to go stale and two instances started at once can't both win. */
static int prepare_dir(struct server *s) {
        struct sockaddr_un sun;

        if (mkdir(s->dir, 0755) == -1 && errno != EEXIST) {
                logmsg("cannot create %s: %s", s->dir, strerror(errno));
                return -1;
        }
        if (control_addr(s->dir, &sun) ||
            path_join(s->path_bootstrap, sizeof(s->path_bootstrap), s->dir,
                      "bootstrap") ||
            path_join(s->path_pid, sizeof(s->path_pid), s->dir, "pid")) {
                logmsg("--dir path too long (the control socket path must "
                       "fit %zu bytes)",
                       sizeof(sun.sun_path) - 1);
                return -1;
        }
        snprintf(s->path_control, sizeof(s->path_control), "%s", sun.sun_path);

        s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dir_fd == -1) {
                logmsg("cannot open %s: %s", s->dir, strerror(errno));
                return -1;
        }
        if (flock(s->dir_fd, LOCK_EX | LOCK_NB) == -1) {
                if (errno == EWOULDBLOCK)
                        logmsg("another kafka_mock is serving %s; not "
                               "starting",
                               s->dir);
                else
                        logmsg("flock %s: %s", s->dir, strerror(errno));
                return -1;
        }
        /* Stale files of a killed instance. */
        unlink(s->path_bootstrap);
        unlink(s->path_control);
        unlink(s->path_pid);
        return 0;
}

static int open_control(struct server *s) {
        struct sockaddr_un sun;

        control_addr(s->dir, &sun);
        s->listen_fd =
            socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->listen_fd == -1) {
                logmsg("socket: %s", strerror(errno));
                return -1;
        }
        if (bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
                logmsg("bind %s: %s", sun.sun_path, strerror(errno));
                return -1;
        }
        s->created_control = 1;
        if (listen(s->listen_fd, 64) == -1) {
                logmsg("listen %s: %s", sun.sun_path, strerror(errno));
                return -1;
        }
        return 0;
}

static rd_kafka_t *new_mock_handle(int keep_nagle, int debug) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;

        /* The mock brokers' accepted connections are set up with this
         * handle's configuration (rd_kafka_transport_post_connect_setup on
         * the cluster's internal broker), so socket.nagle.disable=true here
         * makes every broker-side connection TCP_NODELAY, as real brokers
         * are. */
        if (rd_kafka_conf_set(conf, "socket.nagle.disable",
                              keep_nagle ? "false" : "true", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK ||
            /* No "No bootstrap.servers configured" notice: this handle
             * never connects anywhere, it only hosts the mock brokers. */
            rd_kafka_conf_set(conf, "log_level", debug ? "7" : "4", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK ||
            (debug && rd_kafka_conf_set(conf, "debug", "mock", errstr,
                                        sizeof(errstr)) != RD_KAFKA_CONF_OK)) {
                logmsg("config: %s", errstr);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                logmsg("rd_kafka_new: %s", errstr);
                return NULL;
        }
        return rk;
}

static int block_signals(void) {
        sigset_t set;

        /* Block before librdkafka starts threads, so that every thread
         * inherits the mask and the signals reach only the signalfd. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
                return -1;
        signal(SIGPIPE, SIG_IGN);
        /* Started in the background from a shell or a test harness: a
         * hangup of that terminal must not stop the brokers. */
        signal(SIGHUP, SIG_IGN);
        return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void usage_exit(void) __attribute__((noreturn));
static void usage_exit(void) {
        fprintf(
            stderr,
            "usage:\n"
            "  %s serve --dir DIR [--brokers N] [--topic NAME[:PARTITIONS]]..."
            "\n"
            "        [--keep-nagle] [--debug]\n"
            "  %s ctl --dir DIR [--wait SECONDS] [--timeout SECONDS] "
            "COMMAND [ARG...]\n"
            "  %s selftest [--dir DIR | --bootstrap LIST] [--count N]\n"
            "        [--batch N] [--rounds N] [--topic NAME[:EXPECTED_ERRNAME]]..."
            "\n        [--keep-nagle]\n"
            "ctl commands: ping, quit, status, broker_down ID|all, "
            "broker_up ID|all,\n"
            "  push_errors APIKEY COUNT ERRNAME..., broker_push_errors ID "
            "APIKEY COUNT ERRNAME...,\n"
            "  clear_errors APIKEY, topic_error TOPIC ERRNAME, create_topic "
            "TOPIC PARTITIONS [REPL],\n"
            "  set_leader TOPIC PARTITION ID|none, rtt ID|all MS, "
            "reject_topic TOPIC ERRNAME,\n"
            "  accept_topic TOPIC, sockets, help\n",
            progname, progname, progname);
        exit(2);
}

static int serve_main(int argc, char **argv) {
        struct server s;
        const char *topics[256];
        int ntopics = 0, debug = 0, rc = 1, i;
        long n = 1;
        char buf[64];

        memset(&s, 0, sizeof(s));
        s.listen_fd = -1;
        s.sig_fd    = -1;
        s.dir_fd    = -1;
        for (i = 0; i < MAX_CLIENTS; i++)
                s.clients[i].fd = -1;

        for (i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
                        if (parse_long(argv[++i], 1, 64, &n)) {
                                logmsg("--brokers must be 1..64");
                                return 2;
                        }
                } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
                        s.dir = argv[++i];
                } else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
                        if (ntopics == 256) {
                                logmsg("too many --topic");
                                return 2;
                        }
                        topics[ntopics++] = argv[++i];
                } else if (!strcmp(argv[i], "--keep-nagle")) {
                        s.keep_nagle = 1;
                } else if (!strcmp(argv[i], "--debug")) {
                        debug = 1;
                } else if (!strcmp(argv[i], "--port")) {
                        logmsg("--port is not supported: the librdkafka "
                               "2.0.2 mock always binds 127.0.0.1 on a port "
                               "the kernel picks; read DIR/bootstrap");
                        return 2;
                } else {
                        usage_exit();
                }
        }
        if (!s.dir)
                usage_exit();
        s.nbrokers     = (int)n;
        s.data_brokers = s.nbrokers < 3 ? s.nbrokers : 3;
        s.broker_up    = calloc((size_t)s.nbrokers + 1, 1);
        s.jail_err = calloc((size_t)s.nbrokers + 1, sizeof(*s.jail_err));
        if (!s.broker_up || !s.jail_err) {
                logmsg("out of memory");
                goto out;
        }
        for (i = 1; i <= s.nbrokers; i++)
                s.broker_up[i] = 1;

        if ((s.sig_fd = block_signals()) == -1) {
                logmsg("signals: %s", strerror(errno));
                goto out;
        }
        if (prepare_dir(&s))
                goto out;

        if (!(s.rk = new_mock_handle(s.keep_nagle, debug)))
                goto out;
        if (!(s.mc = rd_kafka_mock_cluster_new(s.rk, s.nbrokers))) {
                logmsg("rd_kafka_mock_cluster_new failed");
                goto out;
        }

        for (i = 0; i < ntopics; i++) {
                char name[MAX_TOPIC_LEN + 16], *colon;
                long parts = 4;
                rd_kafka_resp_err_t err;

                snprintf(name, sizeof(name), "%s", topics[i]);
                if ((colon = strrchr(name, ':'))) {
                        *colon = '\0';
                        if (parse_long(colon + 1, 1, 100000, &parts)) {
                                logmsg("--topic %s: bad partition count",
                                       topics[i]);
                                goto out;
                        }
                }
                if (!valid_topic(name)) {
                        logmsg("--topic %s: invalid topic name", topics[i]);
                        goto out;
                }
                err = create_topic(&s, name, (int)parts, s.data_brokers);
                if (err) {
                        logmsg("--topic %s: %s", topics[i],
                               rd_kafka_err2name(err));
                        goto out;
                }
        }

        snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        if (write_file_atomic(s.dir, "pid", buf)) {
                logmsg("writing %s: %s", s.path_pid, strerror(errno));
                goto out;
        }
        s.created_pid = 1;
        {
                const char *bs = rd_kafka_mock_cluster_bootstraps(s.mc);
                size_t len = strlen(bs) + 2;
                char *content = malloc(len);
                int w;
                if (!content) {
                        logmsg("out of memory");
                        goto out;
                }
                snprintf(content, len, "%s\n", bs);
                w = write_file_atomic(s.dir, "bootstrap", content);
                free(content);
                if (w) {
                        logmsg("writing %s: %s", s.path_bootstrap,
                               strerror(errno));
                        goto out;
                }
                s.created_bootstrap = 1;
                /* Last: a successful "ctl ping" means everything is ready,
                 * even where a killed run left stale files behind. */
                if (open_control(&s))
                        goto out;
                logmsg("%d broker(s) at %s (Nagle %s); control socket %s",
                       s.nbrokers, bs, s.keep_nagle ? "ON" : "off",
                       s.path_control);
        }

        while (!s.quit) {
                struct pollfd pfd[2 + MAX_CLIENTS];
                int map[MAX_CLIENTS];
                int nfds = 0, timeout = -1, r;
                int64_t now = now_us();

                pfd[nfds].fd       = s.sig_fd;
                pfd[nfds++].events = POLLIN;
                pfd[nfds].fd       = s.listen_fd;
                pfd[nfds++].events = POLLIN;
                for (i = 0; i < MAX_CLIENTS; i++) {
                        struct client *c = &s.clients[i];
                        int64_t left_ms;
                        if (c->fd == -1)
                                continue;
                        if (now >= c->deadline_us) {
                                logmsg("control: client sent no complete "
                                       "command within %d ms; closed",
                                       CLIENT_TIMEOUT_MS);
                                client_close(c);
                                continue;
                        }
                        left_ms = (c->deadline_us - now) / 1000 + 1;
                        if (timeout == -1 || left_ms < timeout)
                                timeout = (int)left_ms;
                        map[nfds - 2]      = i;
                        pfd[nfds].fd       = c->fd;
                        pfd[nfds++].events = POLLIN;
                }
                if (jail_active(&s) && (timeout == -1 || timeout > JAIL_TICK_MS))
                        timeout = JAIL_TICK_MS;

                r = poll(pfd, (nfds_t)nfds, timeout);
                if (r == -1 && errno != EINTR) {
                        logmsg("poll: %s", strerror(errno));
                        goto out;
                }
                if (jail_active(&s))
                        jail_refill(&s);
                if (r <= 0)
                        continue;

                if (pfd[0].revents) {
                        struct signalfd_siginfo si;
                        if (read(s.sig_fd, &si, sizeof(si)) == sizeof(si)) {
                                logmsg("signal %d: shutting down",
                                       (int)si.ssi_signo);
                                s.quit = 1;
                        }
                }
                for (i = 2; i < nfds; i++)
                        if (pfd[i].revents)
                                client_io(&s, &s.clients[map[i - 2]]);
                if (pfd[1].revents)
                        accept_clients(&s);
        }
        rc = 0;
        logmsg("stopped");
out:
        server_cleanup(&s);
        return rc;
}

/* ------------------------------------------------------------------------
 * ctl
 * ------------------------------------------------------------------------ */

static int ctl_main(int argc, char **argv) {
        const char *dir = NULL;
        double wait_s = 0, timeout_s = 30;
        char line[MAX_LINE], reply[MAX_LINE];
        size_t off = 0, rlen = 0;
        struct sockaddr_un sun;
        int64_t deadline;
        int i, fd = -1;

        for (i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--dir") && i + 1 < argc)
                        dir = argv[++i];
                else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
                        wait_s = atof(argv[++i]);
                else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
                        timeout_s = atof(argv[++i]);
                else if (argv[i][0] == '-' && argv[i][1] == '-')
                        usage_exit();
                else
                        break;
        }
        if (!dir || i == argc || timeout_s <= 0)
                usage_exit();
        for (; i < argc; i++) {
                int w = snprintf(line + off, sizeof(line) - off, "%s%s",
                                 off ? " " : "", argv[i]);
                if (w < 0 || (size_t)w >= sizeof(line) - off - 1 ||
                    strpbrk(argv[i], "\n")) {
                        printf("error: command too long or has a newline\n");
                        return 1;
                }
                off += (size_t)w;
        }
        line[off++] = '\n';

        if (control_addr(dir, &sun)) {
                printf("error: --dir path too long\n");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);

        /* Connect, retrying until --wait runs out if nothing listens yet. */
        deadline = now_us() + (int64_t)(wait_s * 1e6);
        for (;;) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd == -1) {
                        printf("error: socket: %s\n", strerror(errno));
                        return 1;
                }
                if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
                        break;
                if ((errno != ENOENT && errno != ECONNREFUSED) ||
                    now_us() >= deadline) {
                        printf("error: cannot connect to %s: %s\n",
                               sun.sun_path, strerror(errno));
                        close(fd);
                        return 1;
                }
                close(fd);
                poll(NULL, 0, 20); /* poll interval while waiting */
        }

        deadline = now_us() + (int64_t)(timeout_s * 1e6);
        for (size_t sent = 0; sent < off;) {
                ssize_t w = send(fd, line + sent, off - sent, MSG_NOSIGNAL);
                if (w == -1) {
                        if (errno == EINTR)
                                continue;
                        /* The server may have refused us with a reply
                         * ("error: busy"): read it below. */
                        break;
                }
                sent += (size_t)w;
        }
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = (deadline - now_us()) / 1000;
                ssize_t r;

                if (left <= 0 || poll(&p, 1, (int)left) == 0) {
                        printf("error: no reply within %.1f s\n", timeout_s);
                        close(fd);
                        return 1;
                }
                r = recv(fd, reply + rlen, sizeof(reply) - 1 - rlen, 0);
                if (r == -1 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                rlen += (size_t)r;
                if (rlen == sizeof(reply) - 1)
                        break;
        }
        close(fd);
        reply[rlen] = '\0';
        if (rlen == 0) {
                printf("error: connection closed without a reply\n");
                return 1;
        }
        fputs(reply, stdout);
        if (reply[rlen - 1] != '\n')
                fputc('\n', stdout);
        return strncmp(reply, "ok", 2) == 0 &&
                       (reply[2] == '\n' || reply[2] == ' ' || !reply[2])
                   ? 0
                   : 1;
}

/* ------------------------------------------------------------------------
 * selftest: produce one message at a time, report the round trip
 * ------------------------------------------------------------------------ */

struct dr_state {
        int done;
        rd_kafka_resp_err_t err;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        struct dr_state *st = m->_private;
        (void)rk;
        (void)opaque;
        if (st) {
                st->err  = m->err;
                st->done = 1;
        }
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* Produces one message and waits for its delivery report. */
static rd_kafka_resp_err_t produce_one(rd_kafka_t *rk, const char *topic,
                                       int i, double *ms) {
        struct dr_state st = {0, 0};
        char key[32], val[64];
        int64_t t0;
        rd_kafka_resp_err_t err;

        snprintf(key, sizeof(key), "k%d", i % 10);
        snprintf(val, sizeof(val), "selftest message %d", i);
        t0  = now_us();
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(val, strlen(val)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("h", "v", 1), RD_KAFKA_V_OPAQUE(&st),
            RD_KAFKA_V_END);
        if (err)
                return err;
        while (!st.done)
                rd_kafka_poll(rk, 1000);
        *ms = (double)(now_us() - t0) / 1000.0;
        return st.err;
}

/* Produces BATCH messages (keys over 10 values, so several partitions) and
 * waits for all their delivery reports: several Produce requests are in
 * flight at once, which is where Nagle on the broker side hurts. */
static int produce_batch(rd_kafka_t *rk, const char *topic, int batch,
                         double *ms) {
        struct dr_state *st = calloc((size_t)batch, sizeof(*st));
        int64_t t0 = now_us();
        int i, pending = batch, failed = 0;

        if (!st)
                return -1;
        for (i = 0; i < batch; i++) {
                char key[32], val[64];
                snprintf(key, sizeof(key), "k%d", i % 10);
                snprintf(val, sizeof(val), "selftest batch message %d", i);
                if (rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_KEY(key, strlen(key)),
                        RD_KAFKA_V_VALUE(val, strlen(val)),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_OPAQUE(&st[i]), RD_KAFKA_V_END)) {
                        st[i].done = 1;
                        st[i].err  = RD_KAFKA_RESP_ERR__QUEUE_FULL;
                }
        }
        while (pending > 0) {
                rd_kafka_poll(rk, 1000);
                for (pending = 0, i = 0; i < batch; i++)
                        pending += !st[i].done;
        }
        *ms = (double)(now_us() - t0) / 1000.0;
        for (i = 0; i < batch; i++)
                failed += st[i].err != 0;
        free(st);
        return failed;
}

static int selftest_main(int argc, char **argv) {
        const char *dir = NULL, *bootstrap = NULL;
        char bsbuf[4096], errstr[512];
        struct {
                char name[MAX_TOPIC_LEN + 1];
                rd_kafka_resp_err_t expect;
        } topics[16];
        int ntopics = 0, keep_nagle = 0, i, failures = 0, nok = 0, nexp = 0;
        long count = 100, batch = 100, rounds = 10;
        double *rtt;
        rd_kafka_t *mock_rk = NULL, *rk;
        rd_kafka_mock_cluster_t *mc = NULL;
        rd_kafka_conf_t *conf;
        rd_kafka_resp_err_t ferr;

        for (i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
                        dir = argv[++i];
                } else if (!strcmp(argv[i], "--bootstrap") && i + 1 < argc) {
                        bootstrap = argv[++i];
                } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
                        if (parse_long(argv[++i], 1, 1000000, &count))
                                usage_exit();
                } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
                        if (parse_long(argv[++i], 1, 100000, &batch))
                                usage_exit();
                } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
                        if (parse_long(argv[++i], 0, 100000, &rounds))
                                usage_exit();
                } else if (!strcmp(argv[i], "--keep-nagle")) {
                        keep_nagle = 1;
                } else if (!strcmp(argv[i], "--topic") && i + 1 < argc &&
                           ntopics < 16) {
                        char *colon;
                        snprintf(topics[ntopics].name,
                                 sizeof(topics[ntopics].name), "%s",
                                 argv[++i]);
                        topics[ntopics].expect = 0;
                        if ((colon = strchr(topics[ntopics].name, ':'))) {
                                *colon = '\0';
                                if (parse_err(colon + 1,
                                              &topics[ntopics].expect)) {
                                        fprintf(stderr,
                                                "unknown error \"%s\"\n",
                                                colon + 1);
                                        return 2;
                                }
                        }
                        if (!valid_topic(topics[ntopics].name))
                                usage_exit();
                        ntopics++;
                } else {
                        usage_exit();
                }
        }
        if (ntopics == 0) {
                snprintf(topics[0].name, sizeof(topics[0].name),
                         "kafka_mock_selftest");
                topics[0].expect = 0;
                ntopics          = 1;
        }

        if (dir) {
                char path[PATH_MAX];
                FILE *f;
                if (path_join(path, sizeof(path), dir, "bootstrap") ||
                    !(f = fopen(path, "r"))) {
                        fprintf(stderr, "cannot read %s/bootstrap\n", dir);
                        return 1;
                }
                if (!fgets(bsbuf, sizeof(bsbuf), f))
                        bsbuf[0] = '\0';
                fclose(f);
                bsbuf[strcspn(bsbuf, "\r\n")] = '\0';
                bootstrap                     = bsbuf;
        } else if (!bootstrap) {
                /* No cluster given: an in-process one-broker mock. */
                if (!(mock_rk = new_mock_handle(keep_nagle, 0)) ||
                    !(mc = rd_kafka_mock_cluster_new(mock_rk, 1))) {
                        fprintf(stderr, "cannot create mock cluster\n");
                        return 1;
                }
                bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
        }

        conf = rd_kafka_conf_new();
#define SET(k, v)                                                              \
        do {                                                                   \
                if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) !=   \
                    RD_KAFKA_CONF_OK) {                                        \
                        fprintf(stderr, "%s\n", errstr);                       \
                        return 1;                                              \
                }                                                              \
        } while (0)
        SET("bootstrap.servers", bootstrap);
        SET("acks", "all");
        SET("enable.idempotence", "true");
        SET("socket.nagle.disable", "true");
        SET("linger.ms", "0");
        SET("message.timeout.ms", "10000");
#undef SET
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rd_kafka_new: %s\n", errstr);
                return 1;
        }

        /* Warm up every topic expected to work (metadata, producer id, the
         * first-message metadata hold of 2.0.2): not timed. */
        for (i = 0; i < ntopics; i++) {
                double ms;
                rd_kafka_resp_err_t err;
                if (topics[i].expect)
                        continue;
                err = produce_one(rk, topics[i].name, -1, &ms);
                if (err) {
                        fprintf(stderr, "warm-up produce to %s failed: %s\n",
                                topics[i].name, rd_kafka_err2name(err));
                        failures++;
                }
        }

        rtt = calloc((size_t)count, sizeof(*rtt));
        if (!rtt)
                return 1;
        for (i = 0; i < count; i++) {
                int t = i % ntopics;
                double ms = 0;
                rd_kafka_resp_err_t err =
                    produce_one(rk, topics[t].name, i, &ms);

                if (err != topics[t].expect) {
                        fprintf(stderr,
                                "message %d to %s: got %s, expected %s\n", i,
                                topics[t].name, rd_kafka_err2name(err),
                                rd_kafka_err2name(topics[t].expect));
                        failures++;
                } else if (err) {
                        nexp++;
                } else {
                        rtt[nok++] = ms;
                }
        }

        if (nok > 0) {
                qsort(rtt, (size_t)nok, sizeof(*rtt), cmp_double);
                printf("selftest: %d produce round trips (acks=all, "
                       "idempotent, one at a time): median %.3f ms, "
                       "p90 %.3f ms, min %.3f ms, max %.3f ms\n",
                       nok, rtt[nok / 2], rtt[(nok * 9) / 10], rtt[0],
                       rtt[nok - 1]);
        }
        /* Batches to the first topic expected to work. */
        for (i = 0; i < ntopics && topics[i].expect; i++)
                ;
        if (i < ntopics && rounds > 0) {
                const char *bt = topics[i].name;
                double *bms = calloc((size_t)rounds, sizeof(*bms));
                long r;
                if (!bms)
                        return 1;
                for (r = 0; r < rounds; r++) {
                        int f = produce_batch(rk, bt, (int)batch, &bms[r]);
                        if (f) {
                                fprintf(stderr,
                                        "batch %ld to %s: %d failed "
                                        "deliveries\n",
                                        r, bt, f);
                                failures++;
                        }
                }
                qsort(bms, (size_t)rounds, sizeof(*bms), cmp_double);
                printf("selftest: %ld batches of %ld messages to %s (produce "
                       "all, then wait for every delivery report): median "
                       "%.3f ms, min %.3f ms, max %.3f ms\n",
                       rounds, batch, bt, bms[rounds / 2], bms[0],
                       bms[rounds - 1]);
                free(bms);
        }

        ferr = rd_kafka_fatal_error(rk, errstr, sizeof(errstr));
        if (ferr) {
                fprintf(stderr, "producer fatal error: %s: %s\n",
                        rd_kafka_err2name(ferr), errstr);
                failures++;
        }
        if (nexp > 0)
                printf("selftest: %d produce(s) failed with the expected "
                       "error\n",
                       nexp);
        printf("selftest: %s (%d failure(s))\n", failures ? "FAILED" : "ok",
               failures);

        free(rtt);
        rd_kafka_destroy(rk);
        if (mc)
                rd_kafka_mock_cluster_destroy(mc);
        if (mock_rk)
                rd_kafka_destroy(mock_rk);
        return failures ? 1 : 0;
}

int main(int argc, char **argv) {
        if (argc < 2)
                usage_exit();
        if (!strcmp(argv[1], "serve"))
                return serve_main(argc - 2, argv + 2);
        if (!strcmp(argv[1], "ctl"))
                return ctl_main(argc - 2, argv + 2);
        if (!strcmp(argv[1], "selftest"))
                return selftest_main(argc - 2, argv + 2);
        usage_exit();
}
