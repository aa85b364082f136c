/* iso8601.c — Lua module `iso8601`: the timestamps every provider sends, to epoch seconds and back.
 * Policies and the sync engine read the time of every row; in Lua this was a fifth of policy evaluation. */
#include "host.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* n digits at s -> value, or -1 when one is not a digit */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil) */
static long days_from_civil(long y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD[T ]HH:MM:SS[.fff...][Z|+HH:MM|+HHMM|-...]" (no zone = UTC) -> epoch seconds; 0 on success */
static int parse(const char *s, size_t n, double *out)
{
    if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return -1;
    double t = (double)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        double scale = 0.1, frac = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10) frac += (s[i] - '0') * scale;
        t += frac;
    }
    if (i < n && !(s[i] == 'Z' && i + 1 == n)) {
        if (s[i] != '+' && s[i] != '-') return -1;
        int sign = s[i] == '+' ? 1 : -1, oh, om;
        if (n - i == 6 && s[i + 3] == ':') oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        else if (n - i == 5) oh = digits(s + i + 1, 2), om = digits(s + i + 3, 2);
        else return -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        t -= sign * (oh * 3600 + om * 60);
    }
    /* an offset or a leap second can move the time out of years 0000-9999: format could not write it back */
    if (t < (double)days_from_civil(0, 1, 1) * 86400 || t >= (double)days_from_civil(10000, 1, 1) * 86400) return -1;
    *out = t;
    return 0;
}

/* iso8601.parse(s) -> epoch seconds (float) | nil for anything that is not such a timestamp */
static int l_parse(lua_State *L)
{
    size_t n;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    double t;
    if (!s || parse(s, n, &t) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, t);
    return 1;
}

/* iso8601.format(t) -> "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, milliseconds): sortable text SQLite understands */
static int l_format(lua_State *L)
{
    double t = luaL_checknumber(L, 1);
    luaL_argcheck(L, isfinite(t) && fabs(t) < 1e14, 1, "time out of range");
    double whole = floor(t);
    int ms = (int)floor((t - whole) * 1000 + 0.5);
    if (ms > 999) ms = 999;
    time_t secs = (time_t)whole;
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) return luaL_error(L, "iso8601.format: time out of range");
    char buf[64];
    int len = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    lua_pushlstring(L, buf, (size_t)len);
    return 1;
}

int luaopen_iso8601(lua_State *L)
{
    static const luaL_Reg fns[] = {{"parse", l_parse}, {"format", l_format}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
