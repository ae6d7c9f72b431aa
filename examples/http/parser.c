/* examples/http/parser.c: the HTTP/1.1 head parser and chunked decoder of
 * parser.h. Entry points: http_parse, http_chunked_step.
 *
 * One state machine, byte by byte, resumable at any byte: the state, the
 * position and a few offsets are all it keeps, so a head fed one byte at a
 * time is scanned once in all. Runs of bytes of one class (a target, a
 * header value) are crossed by tight loops over a class table. Meaning is
 * given at line ends, from the spans in the caller's buffer.
 * Must never: read at or past len, allocate, or keep a pointer. */
#include "parser.h"

#include <string.h>

/* ---- Byte classes (RFC 9110 5.6.2, 5.5; RFC 9112 3) -------------------------- */

enum {
    C_TCHAR = 1,  /* token characters */
    C_VCHAR = 2,  /* visible, or obs-text (0x80-0xff) */
    C_WS = 4,     /* SP, HTAB */
    C_HEX = 8,
};

static const unsigned char cls[256] = {
    ['\t'] = C_WS, [' '] = C_WS,
#define T (C_TCHAR | C_VCHAR)
    ['!'] = T, ['#'] = T, ['$'] = T, ['%'] = T, ['&'] = T, ['\''] = T,
    ['*'] = T, ['+'] = T, ['-'] = T, ['.'] = T, ['^'] = T, ['_'] = T,
    ['`'] = T, ['|'] = T, ['~'] = T,
    ['0' ... '9'] = T | C_HEX, ['A' ... 'F'] = T | C_HEX,
    ['a' ... 'f'] = T | C_HEX, ['G' ... 'Z'] = T, ['g' ... 'z'] = T,
#undef T
    ['"'] = C_VCHAR, ['('] = C_VCHAR, [')'] = C_VCHAR, [','] = C_VCHAR,
    ['/'] = C_VCHAR, [':'] = C_VCHAR, [';'] = C_VCHAR, ['<'] = C_VCHAR,
    ['='] = C_VCHAR, ['>'] = C_VCHAR, ['?'] = C_VCHAR, ['@'] = C_VCHAR,
    ['['] = C_VCHAR, ['\\'] = C_VCHAR, [']'] = C_VCHAR, ['{'] = C_VCHAR,
    ['}'] = C_VCHAR,
    [0x80 ... 0xff] = C_VCHAR,
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool mem_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

bool http_span_eq(const char *buf, struct http_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(buf + s.off, lit, n) == 0;
}

bool http_span_ieq(const char *buf, struct http_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && mem_ieq(buf + s.off, lit, n);
}

const struct http_header *http_find_header(const struct http_head *h,
                                           const char *buf, const char *name)
{
    for (unsigned i = 0; h->headers && i < h->nheaders; i++)
        if (http_span_ieq(buf, h->headers[i].name, name))
            return &h->headers[i];
    return NULL;
}

/* ---- The head ---------------------------------------------------------------- */

enum {
    /* Request line. */
    S_REQ_START,   /* before the method; empty lines are skipped */
    S_REQ_START_LF,
    S_METHOD,
    S_TARGET_START,
    S_TARGET,
    S_REQ_VERSION,
    /* Status line. */
    S_RES_VERSION,
    S_STATUS,
    S_REASON,
    /* Shared. */
    S_LINE_LF,     /* after the first line's CR */
    S_HEADER_START,
    S_HNAME,
    S_HVALUE_OWS,
    S_HVALUE,
    S_HEADER_LF,   /* after a header line's CR */
    S_END_LF,      /* after the blank line's CR */
    S_FINAL,       /* p->err holds the result */
};

void http_parser_init(struct http_parser *p, enum http_kind kind,
                      uint32_t max_head, struct http_header *headers,
                      unsigned max_headers)
{
    /* Only what parsing reads is reset: the header array is filled as it
     * is used (clearing it per request would cost more than parsing a
     * small request). */
    p->pos = p->line = p->mark = p->colon = p->vend = 0;
    p->err = 0;
    p->kind = (uint8_t)kind;
    p->state = kind == HTTP_REQUEST ? S_REQ_START : S_RES_VERSION;
    if (max_head == 0)
        max_head = HTTP_DEFAULT_MAX_HEAD;
    p->max_head = max_head > HTTP_MAX_HEAD_LIMIT ? HTTP_MAX_HEAD_LIMIT
                                                 : max_head;
    p->te_seen = p->conn_close = p->conn_keep_alive = false;
    struct http_head *h = &p->head;
    h->method = h->target = h->reason = (struct http_span){0, 0};
    h->status = 0;
    h->minor = 0;
    h->nheaders = 0;
    h->headers = headers;
    h->max_headers = !headers ? 0
                     : max_headers > HTTP_MAX_HEADERS ? HTTP_MAX_HEADERS
                                                      : max_headers;
    h->has_length = h->chunked = h->keep_alive = false;
    h->expect_continue = h->has_host = false;
    h->content_length = 0;
}

/* "HTTP/1.1" at buf + s: 0 (*minor set), HTTP_E_VERSION (a well-formed
 * version other than 1.x) or HTTP_E_BAD. */
static int version(const char *buf, struct http_span s, int *minor)
{
    const char *v = buf + s.off;
    if (s.len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
        v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return HTTP_E_BAD;
    if (v[5] != '1')
        return HTTP_E_VERSION;
    *minor = v[7] == '0' ? 0 : 1;
    return 0;
}

/* The next element of a comma-separated header value: trims whitespace,
 * drops ";parameters", skips empty elements. Returns false at the end. */
static bool next_elem(const char *v, uint32_t len, uint32_t *at,
                      const char **e, uint32_t *elen)
{
    uint32_t i = *at;
    for (;;) {
        while (i < len && (v[i] == ',' || IS(v[i], C_WS)))
            i++;
        if (i == len) {
            *at = i;
            return false;
        }
        uint32_t b = i;
        while (i < len && v[i] != ',' && v[i] != ';')
            i++;
        uint32_t end = i;
        while (end > b && IS(v[end - 1], C_WS))
            end--;
        if (i < len && v[i] == ';')
            while (i < len && v[i] != ',')
                i++;
        if (end > b) {
            *e = v + b;
            *elen = end - b;
            *at = i;
            return true;
        }
    }
}

static bool elem_is(const char *e, uint32_t elen, const char *lit)
{
    size_t n = strlen(lit);
    return elen == n && mem_ieq(e, lit, n);
}

/* Give meaning to the header line just completed, and keep it. Returns 0
 * or an error. */
static int header_done(struct http_parser *p, const char *buf,
                       struct http_header hd)
{
    struct http_head *h = &p->head;
    const char *n = buf + hd.name.off;
    const char *v = buf + hd.value.off;
    uint32_t nlen = hd.name.len, vlen = hd.value.len;
    if (h->headers)
        h->headers[h->nheaders] = hd;
    h->nheaders++;

    switch (lower((unsigned char)n[0])) {
    case 'c':
        if (nlen == 14 && mem_ieq(n, "content-length", 14)) {
            /* 1*DIGIT, at most 2^62; a repeat must agree. */
            if (vlen == 0 || vlen > 18)
                return HTTP_E_BAD;
            uint64_t cl = 0;
            for (uint32_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return HTTP_E_BAD;
                cl = cl * 10 + (uint64_t)(v[i] - '0');
            }
            if (h->has_length && h->content_length != cl)
                return HTTP_E_BAD;
            h->has_length = true;
            h->content_length = cl;
        } else if (nlen == 10 && mem_ieq(n, "connection", 10)) {
            uint32_t at = 0, elen;
            const char *e;
            while (next_elem(v, vlen, &at, &e, &elen)) {
                if (elem_is(e, elen, "close"))
                    p->conn_close = true;
                else if (elem_is(e, elen, "keep-alive"))
                    p->conn_keep_alive = true;
            }
        }
        break;
    case 't':
        if (nlen == 17 && mem_ieq(n, "transfer-encoding", 17)) {
            /* Several headers form one list; chunked must be last, once. */
            uint32_t at = 0, elen;
            const char *e;
            bool any = false;
            while (next_elem(v, vlen, &at, &e, &elen)) {
                any = true;
                if (h->chunked)
                    return HTTP_E_BAD; /* a coding after chunked */
                if (elem_is(e, elen, "chunked"))
                    h->chunked = true;
                else if (p->kind == HTTP_REQUEST &&
                         !elem_is(e, elen, "identity"))
                    return HTTP_E_NOT_IMPL; /* gzip and friends */
            }
            if (!any)
                return HTTP_E_BAD;
            p->te_seen = true;
        }
        break;
    case 'h':
        if (p->kind == HTTP_REQUEST && nlen == 4 && mem_ieq(n, "host", 4)) {
            if (h->has_host)
                return HTTP_E_BAD; /* RFC 9112 3.2: exactly one */
            h->has_host = true;
        }
        break;
    case 'e':
        if (p->kind == HTTP_REQUEST && nlen == 6 && mem_ieq(n, "expect", 6) &&
            elem_is(v, vlen, "100-continue"))
            h->expect_continue = true;
        break;
    }
    return 0;
}

/* The blank line ended the head at end (exclusive): check the whole. */
static int head_done(struct http_parser *p, uint32_t end)
{
    struct http_head *h = &p->head;
    if (p->te_seen && h->has_length)
        return HTTP_E_BAD; /* RFC 9112 6.3: a smuggling attempt */
    if (p->kind == HTTP_REQUEST) {
        if (h->minor == 1 && !h->has_host)
            return HTTP_E_BAD;
        if (p->te_seen && (h->minor == 0 || !h->chunked))
            return HTTP_E_BAD;
    } else if (p->te_seen && !h->chunked) {
        h->has_length = false; /* the body runs until the close */
    }
    /* For a response whose body runs until the close, the caller (who
     * knows whether it has a body at all) must not reuse the connection. */
    h->keep_alive = h->minor == 1 ? !p->conn_close
                                  : p->conn_keep_alive && !p->conn_close;
    return (int)end;
}

/* Record a final result. */
static int final(struct http_parser *p, uint32_t pos, int result)
{
    p->pos = pos;
    p->state = S_FINAL;
    p->err = result;
    return result;
}

int http_parse(struct http_parser *p, const char *buf, size_t len)
{
    if (p->state == S_FINAL)
        return p->err;
    /* Scan no further than the limit: a head must fit in it. */
    uint32_t end = len < p->max_head ? (uint32_t)len : p->max_head;
    uint32_t i = p->pos;
    unsigned state = p->state;
    struct http_head *h = &p->head;
    int err;

    for (; i < end; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (state) {
        /* ---- request line ---- */
        case S_REQ_START:
            if (c == '\r') {
                state = S_REQ_START_LF;
            } else if (c == '\n') {
                /* an empty line before the request: ignored */
            } else if (IS(c, C_TCHAR)) {
                p->mark = i;
                state = S_METHOD;
            } else {
                return final(p, i, HTTP_E_BAD);
            }
            break;
        case S_REQ_START_LF:
            if (c != '\n')
                return final(p, i, HTTP_E_BAD);
            state = S_REQ_START;
            break;
        case S_METHOD:
            if (c == ' ') {
                h->method = (struct http_span){p->mark, i - p->mark};
                state = S_TARGET_START;
            } else if (!IS(c, C_TCHAR)) {
                return final(p, i, HTTP_E_BAD);
            }
            break;
        case S_TARGET_START:
            if (!IS(c, C_VCHAR))
                return final(p, i, HTTP_E_BAD);
            p->mark = i;
            state = S_TARGET;
            /* fall through */
        case S_TARGET:
            while (i < end && IS(buf[i], C_VCHAR))
                i++;
            if (i == end)
                goto out;
            if (buf[i] != ' ')
                return final(p, i, HTTP_E_BAD); /* HTTP/0.9, a control */
            h->target = (struct http_span){p->mark, i - p->mark};
            p->mark = i + 1;
            state = S_REQ_VERSION;
            break;
        case S_REQ_VERSION:
            if (c == '\r' || c == '\n') {
                err = version(buf, (struct http_span){p->mark, i - p->mark},
                              &h->minor);
                if (err)
                    return final(p, i, err);
                state = c == '\r' ? S_LINE_LF : S_HEADER_START;
                p->line = i + 1;
            } else if (i - p->mark >= 8) {
                return final(p, i, HTTP_E_BAD);
            }
            break;
        /* ---- status line ---- */
        case S_RES_VERSION:
            if (c == ' ') {
                err = version(buf, (struct http_span){0, i}, &h->minor);
                if (err)
                    return final(p, i, HTTP_E_BAD);
                p->mark = i + 1;
                state = S_STATUS;
            } else if (i >= 8) {
                return final(p, i, HTTP_E_BAD);
            }
            break;
        case S_STATUS:
            if (i - p->mark < 3) {
                if (c < '0' || c > '9' || (i == p->mark && c == '0'))
                    return final(p, i, HTTP_E_BAD);
                h->status = h->status * 10 + (c - '0');
                break;
            }
            if (c == ' ') {
                p->mark = i + 1;
                state = S_REASON;
                break;
            }
            if (c != '\r' && c != '\n') /* a missing reason is tolerated */
                return final(p, i, HTTP_E_BAD);
            p->mark = i;
            /* fall through */
        case S_REASON:
            while (i < end && (IS(buf[i], C_VCHAR | C_WS)))
                i++;
            if (i == end)
                goto out;
            c = (unsigned char)buf[i];
            if (c != '\r' && c != '\n')
                return final(p, i, HTTP_E_BAD);
            h->reason = (struct http_span){p->mark, i - p->mark};
            state = c == '\r' ? S_LINE_LF : S_HEADER_START;
            p->line = i + 1;
            break;
        case S_LINE_LF:
            if (c != '\n')
                return final(p, i, HTTP_E_BAD); /* a bare CR */
            state = S_HEADER_START;
            p->line = i + 1;
            break;
        /* ---- header lines ---- */
        case S_HEADER_START:
            if (c == '\r') {
                state = S_END_LF;
                break;
            }
            if (c == '\n')
                return final(p, i, head_done(p, i + 1));
            if (!IS(c, C_TCHAR)) /* obs-fold (SP, HTAB) too: RFC 9112 5.2 */
                return final(p, i, HTTP_E_BAD);
            if (h->nheaders == (h->headers ? h->max_headers
                                           : HTTP_MAX_HEADERS))
                return final(p, i, p->kind == HTTP_REQUEST ? HTTP_E_TOO_LARGE
                                                          : HTTP_E_BAD);
            p->line = i;
            state = S_HNAME;
            /* fall through */
        case S_HNAME:
            while (i < end && IS(buf[i], C_TCHAR))
                i++;
            if (i == end)
                goto out;
            if (buf[i] != ':') /* whitespace before the colon, a control */
                return final(p, i, HTTP_E_BAD);
            p->colon = i;
            state = S_HVALUE_OWS;
            break;
        case S_HVALUE_OWS:
            if (IS(c, C_WS))
                break;
            if (c == '\r' || c == '\n') {
                p->mark = p->vend = i;
                goto value_end;
            }
            if (!IS(c, C_VCHAR))
                return final(p, i, HTTP_E_BAD);
            p->mark = i;
            state = S_HVALUE;
            /* fall through */
        case S_HVALUE:
            for (;;) {
                if (i < end && IS(buf[i], C_VCHAR)) {
                    while (i + 1 < end && IS(buf[i + 1], C_VCHAR))
                        i++;
                    p->vend = i + 1; /* trailing whitespace is not value */
                    i++;
                }
                while (i < end && IS(buf[i], C_WS))
                    i++;
                if (i == end || !IS(buf[i], C_VCHAR))
                    break;
            }
            if (i == end)
                goto out;
            c = (unsigned char)buf[i];
            if (c != '\r' && c != '\n')
                return final(p, i, HTTP_E_BAD); /* a control, DEL */
        value_end:
            err = header_done(
                p, buf,
                (struct http_header){
                    .name = {p->line, p->colon - p->line},
                    .value = {p->mark, p->vend - p->mark}});
            if (err)
                return final(p, i, err);
            state = c == '\r' ? S_HEADER_LF : S_HEADER_START;
            p->line = i + 1;
            break;
        case S_HEADER_LF:
            if (c != '\n')
                return final(p, i, HTTP_E_BAD);
            state = S_HEADER_START;
            p->line = i + 1;
            break;
        case S_END_LF:
            if (c != '\n')
                return final(p, i, HTTP_E_BAD);
            return final(p, i, head_done(p, i + 1));
        }
    }
out:
    p->pos = i;
    p->state = (uint16_t)state;
    if (i >= p->max_head) {
        /* The limit was reached without the head's end. */
        if (p->kind == HTTP_RESPONSE)
            return final(p, i, HTTP_E_BAD);
        bool first_line = state == S_REQ_START || state == S_METHOD ||
                          state == S_TARGET_START || state == S_TARGET ||
                          state == S_REQ_VERSION;
        return final(p, i, first_line ? HTTP_E_URI_TOO_LONG
                                      : HTTP_E_TOO_LARGE);
    }
    return HTTP_INCOMPLETE;
}

/* ---- Chunked bodies ---------------------------------------------------------- */

enum {
    K_SIZE,      /* hex digits of a chunk size */
    K_EXT,       /* chunk extensions, ignored */
    K_SIZE_LF,   /* after the size line's CR */
    K_DATA,
    K_DATA_CR,   /* the CRLF after a chunk's data */
    K_DATA_LF,
    K_TRAILER_START,
    K_TRAILER,
    K_TRAILER_LF,
    K_END_LF,
    K_DONE,
};

#define LINE_MAX_BYTES 4096u
#define TRAILER_MAX_BYTES 16384u

void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof *c);
    c->state = K_SIZE;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (unsigned char)lower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The size line ended: data, or the last chunk's trailers. */
static unsigned size_done(struct http_chunked *c)
{
    c->line_len = 0;
    return c->left ? K_DATA : K_TRAILER_START;
}

int http_chunked_step(struct http_chunked *c, const char *buf, size_t len,
                      size_t *used, size_t *data_off, size_t *data_len)
{
    size_t i = 0;
    *data_off = *data_len = 0;
    if (c->state == K_DONE) {
        *used = 0;
        return HTTP_CHUNKED_DONE;
    }
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        switch (c->state) {
        case K_SIZE: {
            int d = hexval(ch);
            if (d >= 0) {
                if (c->left >> 56)
                    goto bad; /* over 2^60 */
                c->left = c->left << 4 | (uint64_t)d;
                c->digits = true;
            } else if (!c->digits) {
                goto bad;
            } else if (ch == ';' || IS(ch, C_WS)) {
                c->state = K_EXT;
            } else if (ch == '\r') {
                c->state = K_SIZE_LF;
            } else if (ch == '\n') {
                c->state = (uint16_t)size_done(c);
            } else {
                goto bad;
            }
            if (++c->line_len > LINE_MAX_BYTES)
                goto bad;
            break;
        }
        case K_EXT:
            if (ch == '\r')
                c->state = K_SIZE_LF;
            else if (ch == '\n')
                c->state = (uint16_t)size_done(c);
            else if (!IS(ch, C_VCHAR | C_WS))
                goto bad;
            if (++c->line_len > LINE_MAX_BYTES)
                goto bad;
            break;
        case K_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->state = (uint16_t)size_done(c);
            break;
        case K_DATA: {
            size_t n = len - i;
            if (n > c->left)
                n = (size_t)c->left;
            c->left -= n;
            if (c->left == 0)
                c->state = K_DATA_CR;
            *data_off = i;
            *data_len = n;
            *used = i + n;
            return HTTP_CHUNKED_DATA;
        }
        case K_DATA_CR:
            if (ch == '\n') { /* a bare LF is tolerated, as in heads */
                c->state = K_SIZE;
                c->digits = false;
                break;
            }
            if (ch != '\r')
                goto bad;
            c->state = K_DATA_LF;
            break;
        case K_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = K_SIZE;
            c->digits = false;
            break;
        case K_TRAILER_START:
            if (ch == '\r') {
                c->state = K_END_LF;
                break;
            }
            if (ch == '\n')
                goto done;
            c->state = K_TRAILER;
            /* fall through */
        case K_TRAILER:
            if (ch == '\r')
                c->state = K_TRAILER_LF;
            else if (ch == '\n')
                c->state = K_TRAILER_START;
            else if (!IS(ch, C_VCHAR | C_WS))
                goto bad;
            if (++c->trailer_bytes > TRAILER_MAX_BYTES)
                goto bad;
            break;
        case K_TRAILER_LF:
            if (ch != '\n')
                goto bad;
            c->state = K_TRAILER_START;
            break;
        case K_END_LF:
            if (ch != '\n')
                goto bad;
            goto done;
        }
    }
    *used = len;
    return HTTP_CHUNKED_MORE;
done:
    c->state = K_DONE;
    *used = i + 1;
    return HTTP_CHUNKED_DONE;
bad:
    *used = i;
    return HTTP_CHUNKED_BAD;
}

/* ---- Reason phrases ----------------------------------------------------------- */

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
