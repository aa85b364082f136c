/* curl_dl.h — libcurl, loaded when the `http` module opens rather than when the process starts.
 *
 * Linking libcurl pulls in some thirty libraries (GnuTLS, Kerberos, LDAP, SSH...) whose loading alone
 * costs about 10 ms at every start, `cachost version` included (dl.h).  http.c includes this header after
 * <curl/curl.h>: each curl_* function it uses is called through a pointer filled by curl_dl_load(). */
#ifndef CACHOST_CURL_DL_H
#define CACHOST_CURL_DL_H

#include <curl/curl.h>

#define CURL_DL_FUNCTIONS(X)                                                                       \
    X(CURLcode, curl_global_init, (long))                                                          \
    X(void, curl_global_cleanup, (void))                                                           \
    X(CURL *, curl_easy_init, (void))                                                              \
    X(CURLcode, curl_easy_setopt, (CURL *, CURLoption, ...))                                       \
    X(CURLcode, curl_easy_getinfo, (CURL *, CURLINFO, ...))                                        \
    X(void, curl_easy_cleanup, (CURL *))                                                           \
    X(void, curl_easy_reset, (CURL *))                                                             \
    X(const char *, curl_easy_strerror, (CURLcode))                                                \
    X(struct curl_header *, curl_easy_nextheader, (CURL *, unsigned int, int, struct curl_header *)) \
    X(void, curl_free, (void *))                                                                   \
    X(struct curl_slist *, curl_slist_append, (struct curl_slist *, const char *))                 \
    X(void, curl_slist_free_all, (struct curl_slist *))                                            \
    X(CURLM *, curl_multi_init, (void))                                                            \
    X(CURLMcode, curl_multi_setopt, (CURLM *, CURLMoption, ...))                                   \
    X(CURLMcode, curl_multi_add_handle, (CURLM *, CURL *))                                         \
    X(CURLMcode, curl_multi_remove_handle, (CURLM *, CURL *))                                      \
    X(CURLMcode, curl_multi_socket_action, (CURLM *, curl_socket_t, int, int *))                   \
    X(CURLMsg *, curl_multi_info_read, (CURLM *, int *))                                           \
    X(CURLMcode, curl_multi_assign, (CURLM *, curl_socket_t, void *))                              \
    X(CURLMcode, curl_multi_cleanup, (CURLM *))                                                    \
    X(CURLU *, curl_url, (void))                                                                   \
    X(void, curl_url_cleanup, (CURLU *))                                                           \
    X(CURLUcode, curl_url_set, (CURLU *, CURLUPart, const char *, unsigned int))                   \
    X(CURLUcode, curl_url_get, (const CURLU *, CURLUPart, char **, unsigned int))                  \
    X(const char *, curl_url_strerror, (CURLUcode))

#define CURL_DL_DECLARE(ret, name, args) extern ret(*dl_##name) args;
CURL_DL_FUNCTIONS(CURL_DL_DECLARE)
#undef CURL_DL_DECLARE

/* Loads libcurl once; returns NULL, or a message saying why it could not be loaded. */
const char *curl_dl_load(void);

/* curl.h may define these three as type-checking macros (typecheck-gcc.h) */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt

#define curl_global_init dl_curl_global_init
#define curl_global_cleanup dl_curl_global_cleanup
#define curl_easy_init dl_curl_easy_init
#define curl_easy_setopt dl_curl_easy_setopt
#define curl_easy_getinfo dl_curl_easy_getinfo
#define curl_easy_cleanup dl_curl_easy_cleanup
#define curl_easy_reset dl_curl_easy_reset
#define curl_easy_strerror dl_curl_easy_strerror
#define curl_easy_nextheader dl_curl_easy_nextheader
#define curl_free dl_curl_free
#define curl_slist_append dl_curl_slist_append
#define curl_slist_free_all dl_curl_slist_free_all
#define curl_multi_init dl_curl_multi_init
#define curl_multi_setopt dl_curl_multi_setopt
#define curl_multi_add_handle dl_curl_multi_add_handle
#define curl_multi_remove_handle dl_curl_multi_remove_handle
#define curl_multi_socket_action dl_curl_multi_socket_action
#define curl_multi_info_read dl_curl_multi_info_read
#define curl_multi_assign dl_curl_multi_assign
#define curl_multi_cleanup dl_curl_multi_cleanup
#define curl_url dl_curl_url
#define curl_url_cleanup dl_curl_url_cleanup
#define curl_url_set dl_curl_url_set
#define curl_url_get dl_curl_url_get
#define curl_url_strerror dl_curl_url_strerror

#endif
