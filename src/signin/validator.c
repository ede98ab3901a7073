/*
 * pg_jwt as a PostgreSQL 18 OAuth validator module (oauth_validator_libraries = 'pg_jwt').
 *
 * Only this glue is C: the validator callbacks are declared in libpq/oauth.h, and the issuer,
 * scope and delegate_ident_mapping of the pg_hba.conf line are fields of HbaLine, which pgrx's
 * bindings do not describe. Everything else (verification, scopes, identity, the role) is
 * src/signin/mod.rs, called through pg_jwt_signin_validate.
 */
#include "postgres.h"

#include "libpq/hba.h"
#include "libpq/libpq-be.h"
#include "libpq/oauth.h"
#include "miscadmin.h"

/* src/signin/mod.rs: true when the bearer may connect; *authn_id a palloc'd identity or NULL. */
extern bool pg_jwt_signin_validate(const char *token, const char *role, const char *issuer,
								   const char *scope, bool delegated, char **authn_id);

static bool
pg_jwt_validate(const ValidatorModuleState *state, const char *token, const char *role,
				ValidatorModuleResult *result)
{
	const HbaLine *hba = MyProcPort ? MyProcPort->hba : NULL;
	char	   *authn_id = NULL;

	result->authorized = pg_jwt_signin_validate(token, role,
												hba ? hba->oauth_issuer : NULL,
												hba ? hba->oauth_scope : NULL,
												hba ? hba->oauth_skip_usermap : false,
												&authn_id);
	result->authn_id = authn_id;
	return true;
}

static const OAuthValidatorCallbacks pg_jwt_validator_callbacks = {
	PG_OAUTH_VALIDATOR_MAGIC,
	.validate_cb = pg_jwt_validate,
};

/*
 * The callbacks, for _PG_oauth_validator_module_init, which src/signin/mod.rs defines and
 * exports (a cdylib exports only Rust's symbols; this reference also links this file in).
 */
const OAuthValidatorCallbacks *
pg_jwt_oauth_callbacks(void)
{
	return &pg_jwt_validator_callbacks;
}
