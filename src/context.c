/*
 * context.c: ambient context with SET LOCAL semantics. It lasts until the end
 * of the transaction; a value set inside a subtransaction that aborts is
 * undone with it. Each nesting level that changes the context saves the
 * value it replaced, like the GUC stack does.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "context.h"

typedef struct OutboxContext
{
	bool		valid;
	bool		has_causation;
	pg_uuid_t	root_id;
	pg_uuid_t	causation_id;
} OutboxContext;

typedef struct SavedContext
{
	int			nest_level;		/* level whose abort restores 'saved' */
	OutboxContext saved;
	struct SavedContext *next;	/* outer levels */
} SavedContext;

static OutboxContext current = {false};
static SavedContext *stack = NULL;	/* in TopTransactionContext */

PG_FUNCTION_INFO_V1(outbox_set_context);
PG_FUNCTION_INFO_V1(outbox_current_root);

void
outbox_context_set(const pg_uuid_t *root_id, const pg_uuid_t *causation_id)
{
	int			level = GetCurrentTransactionNestLevel();

	if (stack == NULL || stack->nest_level < level)
	{
		SavedContext *s = MemoryContextAlloc(TopTransactionContext, sizeof(SavedContext));

		s->nest_level = level;
		s->saved = current;
		s->next = stack;
		stack = s;
	}
	current.valid = true;
	current.root_id = *root_id;
	current.has_causation = (causation_id != NULL);
	if (causation_id)
		current.causation_id = *causation_id;
}

bool
outbox_context_get(pg_uuid_t *root_id, pg_uuid_t *causation_id, bool *has_causation)
{
	if (!current.valid)
		return false;
	*root_id = current.root_id;
	*has_causation = current.has_causation;
	if (current.has_causation)
		*causation_id = current.causation_id;
	return true;
}

static void
context_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			current.valid = false;
			stack = NULL;		/* memory goes with TopTransactionContext */
			break;
		default:
			break;
	}
}

static void
context_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			level;

	if (stack == NULL)
		return;
	level = GetCurrentTransactionNestLevel();	/* the level ending */
	if (stack->nest_level != level)
		return;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		SavedContext *s = stack;

		current = s->saved;
		stack = s->next;
		pfree(s);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* The parent keeps the change; the value to restore is the oldest. */
		if (stack->next != NULL && stack->next->nest_level == level - 1)
		{
			SavedContext *s = stack;

			stack = s->next;
			pfree(s);
		}
		else
			stack->nest_level = level - 1;
	}
}

void
OutboxContextInit(void)
{
	RegisterXactCallback(context_xact_callback, NULL);
	RegisterSubXactCallback(context_subxact_callback, NULL);
}

Datum
outbox_set_context(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("root_id must not be null"),
				 errhint("Pass the root id of the process the following events belong to.")));
	if (!IsTransactionBlock())
		ereport(NOTICE,
				(errmsg("outbox.set_context outside a transaction block lasts only for this statement"),
				 errhint("Call it after BEGIN, in the transaction that emits.")));

	outbox_context_set(PG_GETARG_UUID_P(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_UUID_P(1));
	PG_RETURN_VOID();
}

Datum
outbox_current_root(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *result;

	if (!current.valid)
		PG_RETURN_NULL();
	result = palloc(sizeof(pg_uuid_t));
	*result = current.root_id;
	PG_RETURN_UUID_P(result);
}
