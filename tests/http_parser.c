/* tests/http_parser.c: the HTTP/1.1 head parser and chunked decoder of
 * examples/http/parser.c: valid, malformed, truncated, oversized and
 * pipelined input, fed whole and byte by byte (the results must agree),
 * and random input (which must never be read past its end: every input
 * lives in a heap block of exactly its size, so ASan sees any overread). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/http/parser.h"

/* A heap copy of exactly len bytes (no terminator to hide an overread). */
static char *exact(const char *s, size_t len)
{
    char *b = malloc(len ? len : 1);
    cr_assert_not_null(b);
    memcpy(b, s, len);
    return b;
}

/* Parse s whole. */
static int parse_whole(struct http_parser *p, enum http_kind kind,
                       const char *s, size_t len, uint32_t max_head,
                       struct http_header *hdrs, unsigned nh)
{
    char *b = exact(s, len);
    http_parser_init(p, kind, max_head, hdrs, nh);
    int r = http_parse(p, b, len);
    free(b);
    return r;
}

/* Parse s fed one byte more at a time (the buffer grows, and moves, as a
 * connection's would); every call before the last must be incomplete. */
static int parse_bytewise(struct http_parser *p, enum http_kind kind,
                          const char *s, size_t len, uint32_t max_head,
                          struct http_header *hdrs, unsigned nh)
{
    http_parser_init(p, kind, max_head, hdrs, nh);
    int r = HTTP_INCOMPLETE;
    for (size_t n = 1; n <= len && r == HTTP_INCOMPLETE; n++) {
        char *b = exact(s, n); /* a new block each time: offsets only */
        r = http_parse(p, b, n);
        free(b);
    }
    return r;
}

#define REQ(s) (s), sizeof(s) - 1

static int req(const char *s, size_t len)
{
    struct http_parser p;
    int whole = parse_whole(&p, HTTP_REQUEST, s, len, 0, NULL, 0);
    int bytewise = parse_bytewise(&p, HTTP_REQUEST, s, len, 0, NULL, 0);
    cr_assert_eq(whole, bytewise, "whole %d, byte by byte %d: %.*s", whole,
                 bytewise, (int)len, s);
    return whole;
}

static int res(const char *s, size_t len)
{
    struct http_parser p;
    int whole = parse_whole(&p, HTTP_RESPONSE, s, len, 0, NULL, 0);
    int bytewise = parse_bytewise(&p, HTTP_RESPONSE, s, len, 0, NULL, 0);
    cr_assert_eq(whole, bytewise, "whole %d, byte by byte %d", whole,
                 bytewise);
    return whole;
}

/* ---- Valid requests --------------------------------------------------------- */

Test(http_parser, simple_get_gives_every_span)
{
    static const char s[] = "GET /index.html?a=1 HTTP/1.1\r\n"
                            "Host: example.com\r\n"
                            "User-Agent:  curl/8 \t\r\n"
                            "Accept: */*\r\n"
                            "\r\n";
    struct http_header h[8];
    struct http_parser p;
    int r = parse_whole(&p, HTTP_REQUEST, s, sizeof s - 1, 0, h, 8);
    cr_assert_eq(r, (int)(sizeof s - 1));
    cr_assert(http_span_eq(s, p.head.method, "GET"));
    cr_assert(http_span_eq(s, p.head.target, "/index.html?a=1"));
    cr_assert_eq(p.head.minor, 1);
    cr_assert_eq(p.head.nheaders, 3);
    cr_assert(http_span_eq(s, h[0].name, "Host"));
    cr_assert(http_span_eq(s, h[0].value, "example.com"));
    /* Whitespace around a value is not part of it. */
    cr_assert(http_span_eq(s, h[1].value, "curl/8"));
    cr_assert(http_span_eq(s, h[2].value, "*/*"));
    cr_assert(p.head.keep_alive);
    cr_assert(p.head.has_host);
    cr_assert_not(p.head.has_length);
    cr_assert_not(p.head.chunked);
    const struct http_header *ua = http_find_header(&p.head, s, "user-agent");
    cr_assert_eq(ua, &h[1]);
    cr_assert_null(http_find_header(&p.head, s, "cookie"));
}

Test(http_parser, byte_by_byte_gives_the_same_spans)
{
    static const char s[] = "POST /upload HTTP/1.1\r\n"
                            "Host: h\r\n"
                            "Content-Length: 12\r\n"
                            "X-Empty:\r\n"
                            "X-Inner: a b  c\r\n"
                            "\r\n"
                            "hello world!";
    size_t head = sizeof s - 1 - 12;
    struct http_header h1[8], h2[8];
    struct http_parser a, b;
    cr_assert_eq(parse_whole(&a, HTTP_REQUEST, s, sizeof s - 1, 0, h1, 8),
                 (int)head);
    cr_assert_eq(parse_bytewise(&b, HTTP_REQUEST, s, head, 0, h2, 8),
                 (int)head);
    cr_assert_eq(a.head.nheaders, 4);
    cr_assert_eq(b.head.nheaders, 4);
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(h1[i].name.off, h2[i].name.off);
        cr_assert_eq(h1[i].name.len, h2[i].name.len);
        cr_assert_eq(h1[i].value.off, h2[i].value.off);
        cr_assert_eq(h1[i].value.len, h2[i].value.len);
    }
    cr_assert_eq(a.head.method.len, b.head.method.len);
    cr_assert_eq(a.head.target.off, b.head.target.off);
    cr_assert(a.head.has_length && a.head.content_length == 12);
    cr_assert(b.head.has_length && b.head.content_length == 12);
    cr_assert(http_span_eq(s, h1[2].value, ""));
    cr_assert(http_span_eq(s, h1[3].value, "a b  c"));
}

Test(http_parser, every_prefix_of_a_valid_head_is_incomplete)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n";
    for (size_t n = 0; n < sizeof s - 1; n++) {
        struct http_parser p;
        cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, n, 0, NULL, 0),
                     HTTP_INCOMPLETE, "prefix of %zu bytes", n);
    }
}

Test(http_parser, bare_lf_line_ends_and_leading_empty_lines_are_accepted)
{
    cr_assert_eq(req(REQ("GET / HTTP/1.1\nHost: x\n\n")), 24);
    /* RFC 9112 2.2: empty lines before the request line are ignored. */
    cr_assert_eq(req(REQ("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")), 31);
}

Test(http_parser, keep_alive_follows_version_and_connection)
{
    struct http_parser p;
    static const char a[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                            "Connection: Close\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(a), 0, NULL, 0), 0);
    cr_assert_not(p.head.keep_alive);
    static const char b[] = "GET / HTTP/1.0\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(b), 0, NULL, 0), 0);
    cr_assert_eq(p.head.minor, 0);
    cr_assert_not(p.head.keep_alive);
    cr_assert_not(p.head.has_host); /* not required in 1.0 */
    static const char c[] = "GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n"
                            "\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(c), 0, NULL, 0), 0);
    cr_assert(p.head.keep_alive);
    static const char d[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                            "Connection: upgrade\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(d), 0, NULL, 0), 0);
    cr_assert(p.head.keep_alive);
}

Test(http_parser, chunked_and_expect_are_recognised)
{
    struct http_parser p;
    static const char s[] = "PUT /x HTTP/1.1\r\nHost: x\r\n"
                            "Transfer-Encoding: identity, CHUNKED\r\n"
                            "Expect: 100-continue\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(s), 0, NULL, 0), 0);
    cr_assert(p.head.chunked);
    cr_assert(p.head.expect_continue);
    cr_assert_not(p.head.has_length);
}

Test(http_parser, a_repeated_equal_content_length_is_accepted)
{
    struct http_parser p;
    static const char s[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 5\r\nContent-Length: 5\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(s), 0, NULL, 0), 0);
    cr_assert_eq(p.head.content_length, 5);
}

Test(http_parser, a_version_above_1_1_reads_as_1_1)
{
    struct http_parser p;
    static const char s[] = "GET / HTTP/1.7\r\nHost: x\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_REQUEST, REQ(s), 0, NULL, 0), 0);
    cr_assert_eq(p.head.minor, 1);
}

/* ---- Malformed requests ------------------------------------------------------ */

Test(http_parser, malformed_requests_are_400)
{
    static const char *bad[] = {
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",       /* two spaces */
        "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",       /* space after version */
        "GET / HTTP/1.1\rHost: x\r\n\r\n",          /* bare CR */
        "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",  /* bare CR in headers */
        "GET / HTTP/1.1\r\nHost: x\r\n\rX",         /* CR then not LF */
        "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",     /* control in method */
        "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n",   /* DEL in target */
        "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",    /* tab in target */
        "GET /\r\n\r\n",                            /* HTTP/0.9 */
        "GET / FTP/1.1\r\nHost: x\r\n\r\n",         /* not HTTP */
        "GET / HTTP/1.10\r\nHost: x\r\n\r\n",       /* long version */
        "GET / HTTP/1\r\nHost: x\r\n\r\n",          /* short version */
        "GET / http/1.1\r\nHost: x\r\n\r\n",        /* case matters */
        "/ HTTP/1.1\r\nHost: x\r\n\r\n",            /* no method */
        " GET / HTTP/1.1\r\nHost: x\r\n\r\n",       /* leading space */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",       /* space before colon */
        "GET / HTTP/1.1\r\nHost\r\n\r\n",           /* no colon */
        "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n", /* empty name */
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
        "GET / HTTP/1.1\r\nHost: a\x01" "b\r\n\r\n",    /* control in value */
        "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",    /* DEL in value */
        "GET / HTTP/1.1\r\nH\x80st: x\r\n\r\n",     /* 8-bit name */
        "GET / HTTP/1.1\r\n\r\n",                   /* 1.1 without Host */
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", /* two Hosts */
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "
        "99999999999999999999\r\n\r\n",             /* overflow */
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        "Content-Length: 2\r\n\r\n",                /* disagreeing lengths */
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",       /* smuggling */
        "POST / HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked, identity\r\n\r\n", /* chunked not last */
        "POST / HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", /* in 1.0 */
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS hello */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(req(bad[i], strlen(bad[i])), HTTP_E_BAD, "case %zu: %s",
                     i, bad[i]);
}

Test(http_parser, garbage_is_refused_at_its_first_bad_byte)
{
    /* No need to wait for a line end: the first byte is enough. */
    struct http_parser p;
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, REQ("\x01"), 0, NULL, 0),
                 HTTP_E_BAD);
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, REQ("GET /\x01"), 0, NULL, 0),
                 HTTP_E_BAD);
}

Test(http_parser, other_versions_are_505)
{
    cr_assert_eq(req(REQ("GET / HTTP/2.0\r\nHost: x\r\n\r\n")), HTTP_E_VERSION);
    cr_assert_eq(req(REQ("GET / HTTP/0.9\r\nHost: x\r\n\r\n")), HTTP_E_VERSION);
}

Test(http_parser, unknown_transfer_codings_are_501)
{
    cr_assert_eq(req(REQ("POST / HTTP/1.1\r\nHost: x\r\n"
                         "Transfer-Encoding: gzip, chunked\r\n\r\n")),
                 HTTP_E_NOT_IMPL);
}

Test(http_parser, an_error_is_final)
{
    struct http_parser p;
    static const char s[] = "GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, REQ(s), 0, NULL, 0),
                 HTTP_E_BAD);
    cr_assert_eq(http_parse(&p, s, sizeof s - 1), HTTP_E_BAD);
    cr_assert_eq(http_parse(&p, s, 3), HTTP_E_BAD);
}

Test(http_parser, a_complete_head_is_final)
{
    struct http_parser p;
    static const char s[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE";
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, REQ(s), 0, NULL, 0), 27);
    cr_assert_eq(http_parse(&p, s, sizeof s - 1), 27);
}

/* ---- Oversized ------------------------------------------------------------------ */

/* A request of exactly `total` bytes with one header padded to fit. */
static char *padded(size_t total, size_t *len)
{
    static const char pre[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    static const char post[] = "\r\n\r\n";
    size_t fixed = sizeof pre - 1 + sizeof post - 1;
    cr_assert_gt(total, fixed);
    char *s = malloc(total);
    cr_assert_not_null(s);
    memcpy(s, pre, sizeof pre - 1);
    memset(s + sizeof pre - 1, 'a', total - fixed);
    memcpy(s + total - (sizeof post - 1), post, sizeof post - 1);
    *len = total;
    return s;
}

Test(http_parser, a_head_of_exactly_the_limit_is_accepted)
{
    size_t len;
    char *s = padded(1024, &len);
    struct http_parser p;
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, len, 1024, NULL, 0), 1024);
    cr_assert_eq(parse_bytewise(&p, HTTP_REQUEST, s, len, 1024, NULL, 0),
                 1024);
    free(s);
}

Test(http_parser, one_byte_over_the_limit_is_431)
{
    size_t len;
    char *s = padded(1025, &len);
    struct http_parser p;
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, len, 1024, NULL, 0),
                 HTTP_E_TOO_LARGE);
    cr_assert_eq(parse_bytewise(&p, HTTP_REQUEST, s, len, 1024, NULL, 0),
                 HTTP_E_TOO_LARGE);
    /* Known as soon as the limit is reached, before the head ends. */
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, 1024, 1024, NULL, 0),
                 HTTP_E_TOO_LARGE);
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, 1023, 1024, NULL, 0),
                 HTTP_INCOMPLETE);
    free(s);
}

Test(http_parser, a_long_request_line_is_414)
{
    char s[2100];
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', sizeof s - 5);
    struct http_parser p;
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, sizeof s, 1024, NULL, 0),
                 HTTP_E_URI_TOO_LONG);
    cr_assert_eq(parse_bytewise(&p, HTTP_REQUEST, s, sizeof s, 1024, NULL, 0),
                 HTTP_E_URI_TOO_LONG);
}

static char *many_headers(unsigned n, size_t *len)
{
    size_t cap = 64 + (size_t)n * 16;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    size_t at = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (unsigned i = 1; i < n; i++)
        at += (size_t)sprintf(s + at, "H%u: v\r\n", i);
    at += (size_t)sprintf(s + at, "\r\n");
    *len = at;
    return s;
}

Test(http_parser, too_many_headers_are_431)
{
    size_t len;
    struct http_parser p;
    char *s = many_headers(HTTP_MAX_HEADERS, &len);
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, len, 0, NULL, 0), (int)len);
    cr_assert_eq(p.head.nheaders, HTTP_MAX_HEADERS);
    free(s);
    s = many_headers(HTTP_MAX_HEADERS + 1, &len);
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, len, 0, NULL, 0),
                 HTTP_E_TOO_LARGE);
    free(s);
    /* With a smaller array, its length is the limit. */
    struct http_header h[4];
    s = many_headers(4, &len);
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, len, 0, h, 4), (int)len);
    free(s);
    s = many_headers(5, &len);
    cr_assert_eq(parse_whole(&p, HTTP_REQUEST, s, len, 0, h, 4),
                 HTTP_E_TOO_LARGE);
    free(s);
}

/* ---- Pipelining ------------------------------------------------------------------ */

Test(http_parser, pipelined_requests_parse_one_after_another)
{
    static const char s[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                            "POST /b HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 3\r\n\r\nxyz"
                            "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /d HTT"; /* the start of a fourth */
    const char *want[] = {"/a", "/b", "/c"};
    char *b = exact(s, sizeof s - 1);
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        struct http_parser p;
        http_parser_init(&p, HTTP_REQUEST, 0, NULL, 0);
        int r = http_parse(&p, b + at, sizeof s - 1 - at);
        cr_assert_gt(r, 0, "request %d: %d", i, r);
        cr_assert(http_span_eq(b + at, p.head.target, want[i]));
        at += (size_t)r + (p.head.has_length ? p.head.content_length : 0);
    }
    struct http_parser p;
    http_parser_init(&p, HTTP_REQUEST, 0, NULL, 0);
    cr_assert_eq(http_parse(&p, b + at, sizeof s - 1 - at), HTTP_INCOMPLETE);
    free(b);
}

/* ---- Responses ----------------------------------------------------------------- */

Test(http_parser, responses_give_status_reason_and_framing)
{
    struct http_parser p;
    struct http_header h[4];
    static const char a[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
    cr_assert_eq(parse_whole(&p, HTTP_RESPONSE, REQ(a), 0, h, 4),
                 (int)sizeof a - 1);
    cr_assert_eq(p.head.status, 200);
    cr_assert(http_span_eq(a, p.head.reason, "OK"));
    cr_assert(p.head.has_length && p.head.content_length == 13);
    cr_assert(p.head.keep_alive);
    static const char b[] = "HTTP/1.1 404 Not  Found \r\n"
                            "Transfer-Encoding: chunked\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_RESPONSE, REQ(b), 0, NULL, 0), 0);
    cr_assert_eq(p.head.status, 404);
    cr_assert(p.head.chunked);
    /* A missing reason is tolerated, as in the wild. */
    cr_assert_gt(res(REQ("HTTP/1.1 204\r\n\r\n")), 0);
    cr_assert_gt(res(REQ("HTTP/1.1 204 \r\n\r\n")), 0);
    /* A coding other than chunked: the body runs until the close. */
    static const char c[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_RESPONSE, REQ(c), 0, NULL, 0), 0);
    cr_assert_not(p.head.chunked);
    cr_assert_not(p.head.has_length);
    static const char d[] = "HTTP/1.0 200 OK\r\n\r\n";
    cr_assert_gt(parse_whole(&p, HTTP_RESPONSE, REQ(d), 0, NULL, 0), 0);
    cr_assert_not(p.head.keep_alive);
}

Test(http_parser, malformed_responses_are_refused)
{
    static const char *bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA B: c\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(res(bad[i], strlen(bad[i])), HTTP_E_BAD, "case %zu", i);
    cr_assert_eq(res(REQ("HTTP/2.0 200 OK\r\n\r\n")), HTTP_E_BAD);
}

/* ---- Random input ------------------------------------------------------------------ */

Test(http_parser, random_bytes_never_overread_and_agree_bytewise)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    static const char alphabet[] = "GET /HTP1.0\r\n: \tHost:xContent-Length"
                                   "Transfer-Encoding chunked\x01\x7f\x80";
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = (size_t)(iter % 97) + 1;
        char s[128];
        for (size_t i = 0; i < len; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            /* Mostly HTTP-ish bytes, so that parses get far. */
            s[i] = seed % 8 ? alphabet[(seed >> 8) % (sizeof alphabet - 1)]
                            : (char)(seed >> 16);
        }
        for (int kind = 0; kind < 2; kind++) {
            struct http_parser p;
            int whole = parse_whole(&p, (enum http_kind)kind, s, len, 64,
                                    NULL, 0);
            int bytewise = parse_bytewise(&p, (enum http_kind)kind, s, len, 64,
                                          NULL, 0);
            cr_assert_eq(whole, bytewise, "iteration %d", iter);
            cr_assert(whole <= (int)len);
        }
    }
}

/* ---- Chunked bodies ---------------------------------------------------------------- */

/* Decode all of s (fed in pieces of `step` bytes, copied to exact blocks);
 * returns the result and the data, and where the body ended. */
static int dechunk(const char *s, size_t len, size_t step, char *data,
                   size_t *dlen, size_t *end)
{
    struct http_chunked c;
    http_chunked_init(&c);
    size_t at = 0;
    *dlen = 0;
    while (at < len) {
        size_t n = len - at < step ? len - at : step;
        char *b = exact(s + at, n);
        size_t pos = 0;
        int r = HTTP_CHUNKED_MORE;
        while (pos < n || r == HTTP_CHUNKED_DATA) {
            size_t used, off, dl;
            r = http_chunked_step(&c, b + pos, n - pos, &used, &off, &dl);
            cr_assert_leq(used, n - pos);
            if (dl) {
                cr_assert_leq(off + dl, used);
                memcpy(data + *dlen, b + pos + off, dl);
                *dlen += dl;
            }
            pos += used;
            if (r == HTTP_CHUNKED_DONE || r == HTTP_CHUNKED_BAD) {
                free(b);
                *end = at + pos;
                return r;
            }
            if (r == HTTP_CHUNKED_MORE)
                break;
        }
        free(b);
        at += n;
    }
    *end = at;
    return HTTP_CHUNKED_MORE;
}

Test(http_chunked, decodes_in_any_pieces)
{
    static const char s[] = "5\r\nhello\r\n"
                            "1;name=value\r\n \r\n"
                            "A\r\n0123456789\r\n"
                            "0\r\n"
                            "Trailer: yes\r\n"
                            "\r\n"
                            "NEXT";
    for (size_t step = 1; step <= sizeof s; step++) {
        char data[64];
        size_t dlen, end;
        int r = dechunk(s, sizeof s - 1, step, data, &dlen, &end);
        cr_assert_eq(r, HTTP_CHUNKED_DONE, "step %zu", step);
        cr_assert_eq(dlen, 16);
        cr_assert_eq(memcmp(data, "hello 0123456789", 16), 0);
        cr_assert_eq(end, sizeof s - 1 - 4, "the next message starts after");
    }
}

Test(http_chunked, bare_lf_and_no_trailers_are_accepted)
{
    static const char s[] = "3\nabc\n0\n\n";
    char data[8];
    size_t dlen, end;
    cr_assert_eq(dechunk(s, sizeof s - 1, 64, data, &dlen, &end),
                 HTTP_CHUNKED_DONE);
    cr_assert_eq(dlen, 3);
    cr_assert_eq(end, sizeof s - 1);
}

Test(http_chunked, truncated_bodies_want_more)
{
    static const char s[] = "5\r\nhello\r\n0\r\n\r\n";
    for (size_t n = 0; n < sizeof s - 1; n++) {
        char data[8];
        size_t dlen, end;
        cr_assert_eq(dechunk(s, n, 3, data, &dlen, &end), HTTP_CHUNKED_MORE,
                     "prefix %zu", n);
    }
}

Test(http_chunked, malformed_bodies_are_refused)
{
    static const char *bad[] = {
        "x\r\n",                 /* not hex */
        "\r\n",                  /* no size */
        "5\r\nhelloX\r\n",       /* no CRLF after the data */
        "5\rhello",              /* bare CR */
        "11111111111111111\r\n", /* over 2^60 */
        "0\r\nTrailer\x01: x\r\n\r\n",
        "3;\x01\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char data[64];
        size_t dlen, end;
        cr_expect_eq(dechunk(bad[i], strlen(bad[i]), 64, data, &dlen, &end),
                     HTTP_CHUNKED_BAD, "case %zu", i);
    }
}

Test(http_chunked, long_extension_lines_are_refused)
{
    size_t len = 5000;
    char *s = malloc(len);
    cr_assert_not_null(s);
    memcpy(s, "1;", 2);
    memset(s + 2, 'a', len - 2);
    char data[8];
    size_t dlen, end;
    cr_assert_eq(dechunk(s, len, 100, data, &dlen, &end), HTTP_CHUNKED_BAD);
    free(s);
}

Test(http_parser, reasons_name_the_statuses_the_server_sends)
{
    cr_assert_str_eq(http_reason(200), "OK");
    cr_assert_str_eq(http_reason(400), "Bad Request");
    cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_reason(799), "Unknown");
}
