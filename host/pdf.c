/* pdf.c — the `pdf` Lua module: the text of a PDF held in memory (poppler-glib), for the DLP extractors.
 *
 *   pdf.text(bytes[, max_bytes]) -> text | nil, err
 *
 * Pages are joined with "\n".  err tokens: "encrypted" (a user password is needed), "too_large" (the text
 * passes max_bytes, default 64 MiB: extraction stops at the page that passes it), "unavailable"
 * (libpoppler-glib cannot be loaded; a third value says why), "damaged: <poppler message>".
 *
 * poppler-glib drags in glib, gobject, cairo, freetype, lcms, nss... (some forty libraries): linked, they
 * would cost every start, `cachost version` included.  Like libcurl (curl_dl.c), it is loaded with dlopen
 * the first time pdf.text runs, its headers only used at build time; the functions are called through a
 * table of pointers resolved once.
 *
 * Everything poppler hands out lives in a userdata box with __gc from the moment it exists, so a raise while
 * building the text (out of memory) never leaks it.  The document reads the Lua string in place
 * (g_bytes_new_static): the box keeps the string as its user value, so it outlives the document.
 */
#include <dlfcn.h>
#include <poppler.h>
#include <string.h>

#include "host.h"

#define PDFBOX_MT "cachost.pdfbox"
#define DEFAULT_MAX (64 << 20)
#define POPPLER_SO "libpoppler-glib.so.8"

#define PDF_DL_FUNCTIONS(X)                                                                  \
    X(GBytes *, g_bytes_new_static, (gconstpointer, gsize))                                  \
    X(void, g_bytes_unref, (GBytes *))                                                       \
    X(void, g_object_unref, (gpointer))                                                      \
    X(void, g_free, (gpointer))                                                              \
    X(void, g_error_free, (GError *))                                                        \
    X(GQuark, poppler_error_quark, (void))                                                   \
    X(PopplerDocument *, poppler_document_new_from_bytes, (GBytes *, const char *, GError **)) \
    X(int, poppler_document_get_n_pages, (PopplerDocument *))                                \
    X(PopplerPage *, poppler_document_get_page, (PopplerDocument *, int))                    \
    X(char *, poppler_page_get_text, (PopplerPage *))

/* dl_ prefixed: glib may define some of these names as macros */
#define PDF_DL_DEFINE(ret, name, args) static ret(*dl_##name) args;
PDF_DL_FUNCTIONS(PDF_DL_DEFINE)

/* Loads poppler-glib once; returns NULL, or a message saying why it could not be loaded. */
static const char *pdf_dl_load(void)
{
    static void *lib;
    static const char *failure;
    if (lib || failure) return failure;
    void *h = dlopen(POPPLER_SO, RTLD_NOW | RTLD_LOCAL);
    if (!h) return failure = "cannot load " POPPLER_SO " (apt-get install libpoppler-glib8)";
    /* dlsym on the handle also searches its dependencies: the g_* functions come from glib/gobject */
#define PDF_DL_RESOLVE(ret, name, args)                                     \
    if (!(*(void **)&dl_##name = dlsym(h, #name))) {                         \
        dlclose(h);                                                          \
        return failure = POPPLER_SO " lacks " #name " (poppler 0.82 or newer)"; \
    }
    PDF_DL_FUNCTIONS(PDF_DL_RESOLVE)
    lib = h;
    return NULL;
}

typedef struct {
    GBytes *bytes;
    PopplerDocument *doc;
    PopplerPage *page;
    char *text; /* the current page's */
} pdfbox_t;

static void box_free(pdfbox_t *b)
{
    if (b->text) dl_g_free(b->text);
    if (b->page) dl_g_object_unref(b->page);
    if (b->doc) dl_g_object_unref(b->doc);
    if (b->bytes) dl_g_bytes_unref(b->bytes);
    memset(b, 0, sizeof *b);
}

static int box_gc(lua_State *L)
{
    box_free(luaL_checkudata(L, 1, PDFBOX_MT));
    return 0;
}

static int fail(lua_State *L, pdfbox_t *b, const char *err)
{
    box_free(b);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static int l_text(lua_State *L)
{
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_optinteger(L, 2, DEFAULT_MAX);
    luaL_argcheck(L, max >= 0, 2, "must be >= 0");
    const char *why = pdf_dl_load();
    if (why) {
        lua_pushnil(L);
        lua_pushliteral(L, "unavailable");
        lua_pushstring(L, why);
        return 3;
    }
    pdfbox_t *b = lua_newuserdatauv(L, sizeof *b, 1);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, PDFBOX_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the bytes the document reads stay alive as long as the box */

    b->bytes = dl_g_bytes_new_static(bytes, len);
    GError *gerr = NULL;
    b->doc = dl_poppler_document_new_from_bytes(b->bytes, NULL, &gerr);
    if (!b->doc) {
        /* the message goes on the Lua stack before the GError is freed: a raise there must not leak it,
         * so copy it into a fixed buffer first */
        char msg[200];
        int encrypted = gerr && gerr->domain == dl_poppler_error_quark() && gerr->code == POPPLER_ERROR_ENCRYPTED;
        snprintf(msg, sizeof msg, "damaged: %s", gerr && gerr->message ? gerr->message : "unreadable PDF");
        if (gerr) dl_g_error_free(gerr);
        return fail(L, b, encrypted ? "encrypted" : msg);
    }

    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    size_t total = 0;
    int n = dl_poppler_document_get_n_pages(b->doc);
    for (int i = 0; i < n; i++) {
        b->page = dl_poppler_document_get_page(b->doc, i);
        if (b->page) b->text = dl_poppler_page_get_text(b->page); /* else a page poppler cannot parse: empty */
        size_t tl = b->text ? strlen(b->text) : 0;
        size_t add = tl + (i > 0);
        if (total + add > (size_t)max) return fail(L, b, "too_large");
        if (i > 0) luaL_addchar(&buf, '\n');
        luaL_addlstring(&buf, b->text ? b->text : "", tl);
        total += add;
        if (b->text) dl_g_free(b->text);
        if (b->page) dl_g_object_unref(b->page);
        b->text = NULL;
        b->page = NULL;
    }
    luaL_pushresult(&buf);
    box_free(b);
    return 1;
}

int luaopen_pdf(lua_State *L)
{
    luaL_newmetatable(L, PDFBOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"text", l_text}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
