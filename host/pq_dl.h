/* pq_dl.h — libpq, loaded when the first PostgreSQL connection opens rather than when the process starts.
 *
 * Debian's libpq pulls in Kerberos, LDAP, SASL and GnuTLS (some twenty libraries): linked, their loading
 * was most of every start's time, `cachost version` included, on SQLite stores too (dl.h).  pg.c includes
 * this header in place of <libpq-fe.h>: each PQ* function it uses is called through a pointer filled by
 * pq_dl_load(). */
#ifndef CACHOST_PQ_DL_H
#define CACHOST_PQ_DL_H

#include <libpq-fe.h>

#define PQ_DL_FUNCTIONS(X)                                                                                   \
    X(PGconn *, PQconnectdb, (const char *))                                                                \
    X(ConnStatusType, PQstatus, (const PGconn *))                                                           \
    X(PGTransactionStatusType, PQtransactionStatus, (const PGconn *))                                       \
    X(char *, PQerrorMessage, (const PGconn *))                                                             \
    X(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn *, PQnoticeProcessor, void *))                       \
    X(void, PQfinish, (PGconn *))                                                                           \
    X(PGresult *, PQexec, (PGconn *, const char *))                                                         \
    X(PGresult *, PQexecParams, (PGconn *, const char *, int, const Oid *, const char *const *, const int *, \
                                 const int *, int))                                                         \
    X(PGresult *, PQprepare, (PGconn *, const char *, const char *, int, const Oid *))                      \
    X(PGresult *, PQexecPrepared, (PGconn *, const char *, int, const char *const *, const int *, const int *, \
                                   int))                                                                    \
    X(int, PQsendQueryPrepared, (PGconn *, const char *, int, const char *const *, const int *, const int *,  \
                                 int))                                                                      \
    X(int, PQenterPipelineMode, (PGconn *))                                                                 \
    X(int, PQexitPipelineMode, (PGconn *))                                                                  \
    X(int, PQpipelineSync, (PGconn *))                                                                      \
    X(PGresult *, PQgetResult, (PGconn *))                                                                  \
    X(ExecStatusType, PQresultStatus, (const PGresult *))                                                   \
    X(char *, PQresultErrorField, (const PGresult *, int))                                                  \
    X(char *, PQcmdTuples, (PGresult *))                                                                    \
    X(int, PQntuples, (const PGresult *))                                                                   \
    X(int, PQnfields, (const PGresult *))                                                                   \
    X(char *, PQfname, (const PGresult *, int))                                                             \
    X(Oid, PQftype, (const PGresult *, int))                                                                \
    X(char *, PQgetvalue, (const PGresult *, int, int))                                                     \
    X(int, PQgetlength, (const PGresult *, int, int))                                                       \
    X(int, PQgetisnull, (const PGresult *, int, int))                                                       \
    X(unsigned char *, PQunescapeBytea, (const unsigned char *, size_t *))                                  \
    X(void, PQfreemem, (void *))                                                                            \
    X(void, PQclear, (PGresult *))

#define PQ_DL_DECLARE(ret, name, args) extern ret(*dl_##name) args;
PQ_DL_FUNCTIONS(PQ_DL_DECLARE)
#undef PQ_DL_DECLARE

/* Loads libpq once; returns NULL, or a message saying why it could not be loaded. */
const char *pq_dl_load(void);

#define PQconnectdb dl_PQconnectdb
#define PQstatus dl_PQstatus
#define PQtransactionStatus dl_PQtransactionStatus
#define PQerrorMessage dl_PQerrorMessage
#define PQsetNoticeProcessor dl_PQsetNoticeProcessor
#define PQfinish dl_PQfinish
#define PQexec dl_PQexec
#define PQexecParams dl_PQexecParams
#define PQprepare dl_PQprepare
#define PQexecPrepared dl_PQexecPrepared
#define PQsendQueryPrepared dl_PQsendQueryPrepared
#define PQenterPipelineMode dl_PQenterPipelineMode
#define PQexitPipelineMode dl_PQexitPipelineMode
#define PQpipelineSync dl_PQpipelineSync
#define PQgetResult dl_PQgetResult
#define PQresultStatus dl_PQresultStatus
#define PQresultErrorField dl_PQresultErrorField
#define PQcmdTuples dl_PQcmdTuples
#define PQntuples dl_PQntuples
#define PQnfields dl_PQnfields
#define PQfname dl_PQfname
#define PQftype dl_PQftype
#define PQgetvalue dl_PQgetvalue
#define PQgetlength dl_PQgetlength
#define PQgetisnull dl_PQgetisnull
#define PQunescapeBytea dl_PQunescapeBytea
#define PQfreemem dl_PQfreemem
#define PQclear dl_PQclear

#endif
