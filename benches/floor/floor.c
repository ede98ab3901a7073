/*
 * The per-row floor for pg_jwt's accessors (make bench, section 3b): the cheapest possible
 * function of each accessor's result type, a V1 C function that ignores its text argument and
 * returns a constant. The benchmark compiles this file with the server's pg_config and
 * declares the functions STABLE, as the accessors are.
 */
#include "postgres.h"
#include "fmgr.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

PG_MODULE_MAGIC;

static pg_uuid_t tenant = {{0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 3}};

PG_FUNCTION_INFO_V1(floor_uuid);
Datum
floor_uuid(PG_FUNCTION_ARGS)
{
	PG_RETURN_UUID_P(&tenant);
}

PG_FUNCTION_INFO_V1(floor_text);
Datum
floor_text(PG_FUNCTION_ARGS)
{
	static text *value = NULL;

	if (value == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		value = cstring_to_text("user-3");
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_TEXT_P(value);
}

PG_FUNCTION_INFO_V1(floor_bigint);
Datum
floor_bigint(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(1700000000);
}

PG_FUNCTION_INFO_V1(floor_array);
Datum
floor_array(PG_FUNCTION_ARGS)
{
	static ArrayType *value = NULL;

	if (value == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		Datum		items[2];

		items[0] = CStringGetTextDatum("member");
		items[1] = CStringGetTextDatum("editor");
		value = construct_array(items, 2, TEXTOID, -1, false, TYPALIGN_INT);
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_ARRAYTYPE_P(value);
}
