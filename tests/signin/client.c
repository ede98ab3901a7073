/*
 * The sign-in test's client (scripts/signin-test.sh): connects with libpq 18 (the wheel's),
 * handing over the token given on the command line through the auth-data hook
 * (PQAUTHDATA_OAUTH_BEARER_TOKEN), as an application with its own OAuth flow does. Then runs
 * each statement given, one line of output each:
 *   OK <the first row's values, separated by |>      ERROR <SQLSTATE> <message>
 * "SLEEP <seconds>" sleeps; "FASTPATH <oid>" calls the function of that OID, without arguments,
 * through the fast-path interface (PQfn, as libpq's large-object calls do: no statement, so no
 * planner or executor), printing OK <its text result> on success. A lost connection prints
 * GONE <message>. A failed connection prints
 * CONNFAIL <message> and exits 1. The token is never printed.
 * Usage: client <conninfo> <token> [statement...]
 *
 * Benchmark mode (scripts/bench-signin.sh): client --connect <conninfo> <tokens-file|-> <n>
 * connects n times (each: connect, SELECT 1, close), with the file's tokens in turn (one per
 * line; "-": no token, for trust), and prints the seconds it took.
 */
#include <time.h>
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

static int
connect_loop(const char *conninfo, const char *tokens_path, int n)
{
	char	  **tokens = NULL;
	int			ntokens = 0;
	struct timespec t0,
				t1;

	if (strcmp(tokens_path, "-") != 0)
	{
		FILE	   *f = fopen(tokens_path, "r");
		char		line[16384];

		if (!f)
			return 2;
		while (fgets(line, sizeof line, f))
		{
			line[strcspn(line, "\n")] = 0;
			tokens = realloc(tokens, sizeof(char *) * (ntokens + 1));
			tokens[ntokens++] = strdup(line);
		}
		fclose(f);
		if (ntokens == 0)
			return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++)
	{
		PGconn	   *conn;
		PGresult   *res;

		the_token = ntokens ? tokens[i % ntokens] : "";
		conn = PQconnectdb(conninfo);
		if (PQstatus(conn) != CONNECTION_OK)
		{
			printf("CONNFAIL ");
			one_line(PQerrorMessage(conn));
			return 1;
		}
		if (!getenv("PGJWT_CLIENT_NO_STATEMENT"))
		{
			res = PQexec(conn, "SELECT 1");
			PQclear(res);
		}
		PQfinish(conn);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.6f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;

	if (argc == 5 && strcmp(argv[1], "--connect") == 0)
	{
		PQsetAuthDataHook(hook);
		return connect_loop(argv[2], argv[3], atoi(argv[4]));
	}

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
		if (strncmp(argv[i], "FASTPATH ", 9) == 0)
		{
			char		result[1024];
			int			result_len = 0;
			PQArgBlock	none;

			memset(&none, 0, sizeof none);
			res = PQfn(conn, atoi(argv[i] + 9), (int *) result, &result_len, 0, &none, 0);
			if (PQresultStatus(res) == PGRES_COMMAND_OK)
			{
				if (result_len < 0 || result_len >= (int) sizeof result)
					result_len = 0;
				result[result_len] = 0;
				printf("OK %s\n", result);
				PQclear(res);
				fflush(stdout);
				continue;
			}
		}
		else
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
