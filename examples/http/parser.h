/* examples/http/parser.h: an HTTP/1.1 message-head parser (requests for the
 * server, responses for the client) and a chunked-body decoder: zero-copy
 * (the results are offsets into the caller's buffer), incremental (bytes
 * seen in an earlier call are never scanned again, so feeding a head one
 * byte at a time costs the same as feeding it whole), and allocation-free.
 * Entry points: http_parser_init, http_parse, http_chunked_step.
 *
 * It knows nothing of sockets or of weft: the server and the client feed
 * it what they received, and the tests feed it strings. It must never read
 * past the length it was given, keep a pointer to the caller's buffer, or
 * accept a head that RFC 9112 says to reject (a smuggling vector: both
 * Content-Length and Transfer-Encoding, two different lengths, whitespace
 * before a header's colon, a bare CR, obs-fold, a control byte). */
#ifndef WEFT_EXAMPLES_HTTP_PARSER_H
#define WEFT_EXAMPLES_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header lines per head at most; more is HTTP_E_TOO_LARGE (431). */
#define HTTP_MAX_HEADERS 64u
/* The default and the largest head size (request or status line plus
 * headers plus the blank line). */
#define HTTP_DEFAULT_MAX_HEAD 8192u
#define HTTP_MAX_HEAD_LIMIT (1u << 20)

/* http_parse's results. A complete head returns its length in bytes (> 0);
 * errors are negative and, for requests, name the status to answer. */
enum {
    HTTP_INCOMPLETE = 0,     /* feed more bytes */
    HTTP_E_BAD = -400,       /* malformed: 400 Bad Request */
    HTTP_E_URI_TOO_LONG = -414, /* the request line alone exceeds the limit */
    HTTP_E_TOO_LARGE = -431, /* headers too large, or too many */
    HTTP_E_NOT_IMPL = -501,  /* a transfer coding other than chunked */
    HTTP_E_VERSION = -505,   /* not HTTP/1.x */
};

enum http_kind {
    HTTP_REQUEST = 0,
    HTTP_RESPONSE = 1,
};

/* A piece of the message: buf + off, len bytes, where buf is what the
 * caller passes to http_parse (the message's first byte). */
struct http_span {
    uint32_t off, len;
};

struct http_header {
    struct http_span name, value; /* value without surrounding whitespace */
};

/* What a complete head says. Valid once http_parse returned > 0, until the
 * next http_parser_init. */
struct http_head {
    struct http_span method, target; /* requests */
    int status;                      /* responses: 100..999 */
    struct http_span reason;         /* responses (may be empty) */
    int minor;                       /* HTTP/1.minor: 0 or 1 (1.x: 1) */
    unsigned nheaders;               /* header lines seen */
    struct http_header *headers;     /* the caller's array, or NULL */
    unsigned max_headers;            /* its length */
    /* From the headers (interpreted as RFC 9112 says): */
    bool has_length;         /* Content-Length given */
    uint64_t content_length;
    bool chunked;            /* Transfer-Encoding ends in chunked */
    bool keep_alive;         /* the connection may carry another message */
    bool expect_continue;    /* requests: Expect: 100-continue */
    bool has_host;           /* requests: a Host header */
};

/* The parser's state; its fields are private but for head. */
struct http_parser {
    uint32_t pos;      /* bytes of the message scanned so far */
    uint32_t max_head;
    uint32_t line;     /* offset of the line being scanned */
    uint32_t mark;     /* offset of the token being scanned */
    uint32_t colon;    /* header lines: offset of the ':' */
    uint32_t vend;     /* header lines: end of the value so far */
    int err;           /* the final result once there is one */
    uint16_t state;
    uint8_t kind;      /* enum http_kind */
    bool te_seen;      /* a Transfer-Encoding header was seen */
    bool conn_close, conn_keep_alive;
    struct http_head head;
};

/* Start a new message of `kind` (a request or a response) whose head may
 * take up to max_head bytes (0: HTTP_DEFAULT_MAX_HEAD; at most
 * HTTP_MAX_HEAD_LIMIT). The headers are stored in headers[0..max_headers)
 * (more lines than that: HTTP_E_TOO_LARGE); with headers NULL they are
 * checked and interpreted but not kept, which keeps the parser small (up
 * to HTTP_MAX_HEADERS lines then). Call again for each message. */
void http_parser_init(struct http_parser *p, enum http_kind kind,
                      uint32_t max_head, struct http_header *headers,
                      unsigned max_headers);

/* Parse on: buf[0..len) is the message from its first byte, of which the
 * first bytes were already seen by earlier calls (buf may have moved: only
 * offsets are kept; it must still hold those bytes). len may include bytes
 * past the head (a body, the next pipelined request): they are not
 * touched. Returns the head's length (> 0) once it is complete, and
 * p->head describes it; HTTP_INCOMPLETE; or an HTTP_E_* error, which is
 * final (the connection should answer it, for a request, and close).
 * Never reads beyond buf[len - 1]. Once a result other than
 * HTTP_INCOMPLETE was returned, further calls return it again. */
int http_parse(struct http_parser *p, const char *buf, size_t len);

/* The bytes of a span, for a buffer holding the message. */
static inline const char *http_ptr(const char *buf, struct http_span s)
{
    return buf + s.off;
}

/* Whether span s of buf equals the C string lit (case-sensitively, or
 * ignoring ASCII case with http_span_ieq). */
bool http_span_eq(const char *buf, struct http_span s, const char *lit);
bool http_span_ieq(const char *buf, struct http_span s, const char *lit);

/* The first header named `name` (ASCII case ignored), or NULL (also
 * when the headers were not kept). */
const struct http_header *http_find_header(const struct http_head *h,
                                           const char *buf, const char *name);

/* ---- Chunked bodies ---------------------------------------------------------- */

struct http_chunked {
    uint64_t left;     /* data bytes left in the current chunk */
    uint32_t line_len; /* bytes of the current size/trailer line so far */
    uint32_t trailer_bytes;
    uint16_t state;
    bool digits;       /* the size line had a hex digit */
};

enum {
    HTTP_CHUNKED_MORE = 0, /* all input used: call again with more */
    HTTP_CHUNKED_DONE = 1, /* the body (and its trailers) ended */
    HTTP_CHUNKED_DATA = 2, /* *data_off and *data_len name body bytes */
    HTTP_CHUNKED_BAD = -400,
};

/* Start a chunked body. */
void http_chunked_init(struct http_chunked *c);

/* Decode from buf[0..len): consumes *used bytes and returns
 * HTTP_CHUNKED_DATA (the data is buf[*data_off .. + *data_len), within the
 * consumed bytes: copy it or use it before the buffer changes; call again
 * with buf + *used), HTTP_CHUNKED_MORE (*used == len), HTTP_CHUNKED_DONE
 * (the body ended after *used bytes; what follows is the next message), or
 * HTTP_CHUNKED_BAD (malformed, a size over 2^60, a size or trailer line
 * over 4 KiB, trailers over 16 KiB). Zero-copy; nothing is moved. */
int http_chunked_step(struct http_chunked *c, const char *buf, size_t len,
                      size_t *used, size_t *data_off, size_t *data_len);

/* The reason phrase of a status code ("Not Found"), "Unknown" if none. */
const char *http_reason(int status);

#endif /* WEFT_EXAMPLES_HTTP_PARSER_H */
