/*
 * The sign-in test's client (scripts/signin-test.sh): connects with libpq 18 (the wheel's),
 * handing over the token given on the command line through the auth-data hook
 * (PQAUTHDATA_OAUTH_BEARER_TOKEN), as an application with its own OAuth flow does. Then runs
 * each statement given, one line of output each:
 *   OK <the first row's values, separated by |>      ERROR <SQLSTATE> <message>
 * "SLEEP <seconds>" sleeps; a lost connection prints GONE <message>. A failed connection prints
 * CONNFAIL <message> and exits 1. The token is never printed.
 * Usage: client <conninfo> <token> [statement...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpq-fe.h"

static const char *the_token;

static int
hook(PGauthData type, PGconn *conn, void *data)
{
	if (type == PQAUTHDATA_OAUTH_BEARER_TOKEN)
	{
		PGoauthBearerRequest *request = data;

		request->token = (char *) the_token;
		return 1;
	}
	return PQdefaultAuthDataHook(type, conn, data);
}

static void
one_line(const char *s)
{
	for (; s && *s; s++)
		putchar(*s == '\n' ? ' ' : *s);
	putchar('\n');
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;

	if (argc < 3)
	{
		fprintf(stderr, "usage: client <conninfo> <token> [statement...]\n");
		return 2;
	}
	the_token = argv[2];
	PQsetAuthDataHook(hook);
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		printf("CONNFAIL ");
		one_line(PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	for (int i = 3; i < argc; i++)
	{
		PGresult   *res;

		if (strncmp(argv[i], "SLEEP ", 6) == 0)
		{
			sleep((unsigned) atoi(argv[i] + 6));
			continue;
		}
		res = PQexec(conn, argv[i]);
		if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			printf("OK");
			for (int c = 0; PQntuples(res) > 0 && c < PQnfields(res); c++)
				printf("%s%s", c ? "|" : " ", PQgetisnull(res, 0, c) ? "NULL" : PQgetvalue(res, 0, c));
			printf("\n");
		}
		else if (PQstatus(conn) != CONNECTION_OK)
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			printf("GONE %s ", state ? state : "-");
			one_line(PQerrorMessage(conn));
		}
		else
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			printf("ERROR %s ", state ? state : "-");
			one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		}
		PQclear(res);
		fflush(stdout);
	}
	PQfinish(conn);
	return 0;
}
