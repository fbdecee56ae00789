/* Address and domain parsing: RFC 5321 paths, adversarial forms, IDNA,
 * case, trailing dots, literals and limits. */
#include "store_test.h"

struct path_case {
    const char *in;
    int rc;
    const char *local;
    const char *domain;
};

static const struct path_case path_cases[] = {
    {"<a@b.example>", ADDR_OK, "a", "b.example"},
    {"a@b.example", ADDR_OK, "a", "b.example"},
    {"Info@B.Example.", ADDR_OK, "info", "b.example"},
    {"<>", ADDR_OK, "", ""},
    /* the allow-list must see c.example in all three */
    {"<@a.example:b@c.example>", ADDR_OK, "b", "c.example"},
    {"<@a.example,@x.example:b@c.example>", ADDR_OK, "b", "c.example"},
    {"\"b@a.example\"@c.example", ADDR_OK, "\"b@a.example\"", "c.example"},
    {"<\"b@a.example\"@c.example>", ADDR_OK, "\"b@a.example\"", "c.example"},
    {"b%a.example@c.example", ADDR_OK, "b%a.example", "c.example"},
    /* quoted local parts: unquoted when they need not be quoted */
    {"\"Abc\"@x.example", ADDR_OK, "abc", "x.example"},
    {"\"a b\"@x.example", ADDR_OK, "\"a b\"", "x.example"},
    {"\"a\\\"b\"@x.example", ADDR_OK, "\"a\\\"b\"", "x.example"},
    {"\"a\\b\"@x.example", ADDR_OK, "ab", "x.example"},
    {"\"\"@x.example", ADDR_OK, "\"\"", "x.example"},
    {"user+tag@x.example", ADDR_OK, "user+tag", "x.example"},
    /* IDNA and literals */
    {"a@bücher.example", ADDR_OK, "a", "xn--bcher-kva.example"},
    {"a@BÜCHER.Example.", ADDR_OK, "a", "xn--bcher-kva.example"},
    {"a@xn--bcher-kva.example", ADDR_OK, "a", "xn--bcher-kva.example"},
    {"a@[192.0.2.1]", ADDR_OK, "a", "[192.0.2.1]"},
    {"a@[IPV6:2001:DB8::1]", ADDR_OK, "a", "[IPv6:2001:db8::1]"},
    {"a@localhost", ADDR_OK, "a", "localhost"},
    /* syntax errors */
    {"", ADDR_ESYNTAX, NULL, NULL},
    {"<", ADDR_ESYNTAX, NULL, NULL},
    {"<a@b.example", ADDR_ESYNTAX, NULL, NULL},
    {"postmaster", ADDR_ESYNTAX, NULL, NULL},
    {"a@", ADDR_ESYNTAX, NULL, NULL},
    {"@b.example", ADDR_ESYNTAX, NULL, NULL},
    {"a@b@c.example", ADDR_ESYNTAX, NULL, NULL},
    {"a..b@c.example", ADDR_ESYNTAX, NULL, NULL},
    {".a@c.example", ADDR_ESYNTAX, NULL, NULL},
    {"a.@c.example", ADDR_ESYNTAX, NULL, NULL},
    {"a b@c.example", ADDR_ESYNTAX, NULL, NULL},
    {"\"abc@c.example", ADDR_ESYNTAX, NULL, NULL},
    {"<@a.example b@c.example>", ADDR_ESYNTAX, NULL, NULL},
    {"<@:b@c.example>", ADDR_ESYNTAX, NULL, NULL},
    {"a@b.example\r\n", ADDR_ESYNTAX, NULL, NULL},
    {"a\x01@b.example", ADDR_ESYNTAX, NULL, NULL},
    {"a@b.exa\x7fmple", ADDR_ESYNTAX, NULL, NULL},
    {"ü@b.example", ADDR_ESYNTAX, NULL, NULL},
    {"\"ü\"@b.example", ADDR_ESYNTAX, NULL, NULL},
    /* bad domains */
    {"a@b..example", ADDR_EDOMAIN, NULL, NULL},
    {"a@.b.example", ADDR_EDOMAIN, NULL, NULL},
    {"a@b.example..", ADDR_EDOMAIN, NULL, NULL},
    {"a@-b.example", ADDR_EDOMAIN, NULL, NULL},
    {"a@b-.example", ADDR_EDOMAIN, NULL, NULL},
    {"a@b_c.example", ADDR_EDOMAIN, NULL, NULL},
    {"a@b!c.example", ADDR_EDOMAIN, NULL, NULL},
    {"a@192.0.2.1", ADDR_EDOMAIN, NULL, NULL},
    {"a@[192.0.2]", ADDR_EDOMAIN, NULL, NULL},
    {"a@[foo]", ADDR_EDOMAIN, NULL, NULL},
    {"a@[IPv6:zz::1]", ADDR_EDOMAIN, NULL, NULL},
    {"a@\xff.example", ADDR_EIDNA, NULL, NULL},
};

static void test_paths(void **state)
{
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        struct addr a;
        int rc = addr_parse(c->in, &a);

        if (rc != c->rc)
            fail_msg("%s: got %d (%s), want %d", c->in, rc, addr_strerror(rc),
                     c->rc);
        if (c->local == NULL) {
            assert_string_equal(a.full, "");
            continue;
        }
        assert_string_equal(a.local, c->local);
        assert_string_equal(a.domain, c->domain);
        if (c->local[0] == '\0')
            assert_string_equal(a.full, "");
    }
}

static void test_full_and_nul(void **state)
{
    struct addr a;

    assert_int_equal(addr_parse("<@r.example:Bob@Example.COM.>", &a), 0);
    assert_string_equal(a.full, "bob@example.com");
    /* an embedded NUL is refused, not cut short */
    assert_int_equal(addr_parse_path("a@b.example\0evil", 16, &a),
                     ADDR_ESYNTAX);
    assert_int_equal(addr_parse_path("<a@b.example>xyz", 13, &a), 0);
    assert_string_equal(a.full, "a@b.example");
}

/* Builds a string of n copies of c followed by tail. */
static char *repeat(char *buf, char c, size_t n, const char *tail)
{
    memset(buf, c, n);
    strcpy(buf + n, tail);
    return buf;
}

static void test_limits(void **state)
{
    char in[2048], dom[600];
    struct addr a;

    assert_int_equal(addr_parse(repeat(in, 'x', 64, "@b.example"), &a), 0);
    assert_int_equal(addr_parse(repeat(in, 'x', 65, "@b.example"), &a),
                     ADDR_ETOOLONG);
    assert_int_equal(addr_parse(repeat(in, 'x', 1500, "@b.example"), &a),
                     ADDR_ETOOLONG);
    /* a quoted local part counts what is between the quotes */
    snprintf(in, sizeof(in), "\"%s\"@b.example", repeat(dom, ' ', 64, ""));
    assert_int_equal(addr_parse(in, &a), 0);
    snprintf(in, sizeof(in), "\"%s\"@b.example", repeat(dom, ' ', 65, ""));
    assert_int_equal(addr_parse(in, &a), ADDR_ETOOLONG);

    snprintf(in, sizeof(in), "a@%s.example", repeat(dom, 'l', 63, ""));
    assert_int_equal(addr_parse(in, &a), 0);
    snprintf(in, sizeof(in), "a@%s.example", repeat(dom, 'l', 64, ""));
    assert_int_equal(addr_parse(in, &a), ADDR_ETOOLONG);
}

static void test_domain_total_length(void **state)
{
    char in[400], out[ADDR_DOMAIN_MAX + 1];
    size_t n = 0;

    /* 4 x 63-octet labels + dots = 255: too long; 3 x 63 + 61 = 253 */
    for (int i = 0; i < 4; i++) {
        memset(in + n, 'a' + i, 63);
        n += 63;
        in[n++] = '.';
    }
    in[n - 1] = '\0';
    assert_int_equal(addr_domain_norm(in, 0, out, sizeof(out)), ADDR_ETOOLONG);
    in[3 * 64 + 61] = '\0';
    assert_int_equal(addr_domain_norm(in, 0, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), 253);
    /* the trailing dot does not count */
    strcat(in, ".");
    assert_int_equal(addr_domain_norm(in, 0, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), 253);
    /* a wildcard entry needs room for its dot */
    in[3 * 64 + 61] = '\0';
    memmove(in + 1, in, strlen(in) + 1);
    in[0] = '.';
    assert_int_equal(addr_domain_norm(in, 1, out, sizeof(out)), ADDR_ETOOLONG);
}

static void test_domain_norm(void **state)
{
    char out[ADDR_DOMAIN_MAX + 1];

    assert_int_equal(addr_domain_norm("Example.COM.", 0, out, sizeof(out)), 0);
    assert_string_equal(out, "example.com");
    assert_int_equal(addr_domain_norm(".Example.COM", 1, out, sizeof(out)), 0);
    assert_string_equal(out, ".example.com");
    assert_int_equal(addr_domain_norm(".example.com", 0, out, sizeof(out)),
                     ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm("..example.com", 1, out, sizeof(out)),
                     ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm(".", 1, out, sizeof(out)), ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm("", 0, out, sizeof(out)), ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm(".[192.0.2.1]", 1, out, sizeof(out)),
                     ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm("a b.example", 0, out, sizeof(out)),
                     ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm("a\nb.example", 0, out, sizeof(out)),
                     ADDR_EDOMAIN);
    assert_int_equal(addr_domain_norm("bücher.example", 0, out, sizeof(out)),
                     0);
    assert_string_equal(out, "xn--bcher-kva.example");
    assert_int_equal(addr_domain_norm(".Bücher.Example", 1, out, sizeof(out)),
                     0);
    assert_string_equal(out, ".xn--bcher-kva.example");
    /* IDNA2008 non-transitional: sharp s stays, mapped to its A-label */
    assert_int_equal(addr_domain_norm("faß.de", 0, out, sizeof(out)), 0);
    assert_string_equal(out, "xn--fa-hia.de");
    /* an A-label that does not decode is refused */
    assert_int_equal(addr_domain_norm("xn--zz.example", 0, out, sizeof(out)),
                     ADDR_EIDNA);
    /* the output buffer must be large enough for any domain */
    assert_int_equal(addr_domain_norm("example.com", 0, out, 10),
                     ADDR_ETOOLONG);
}

static void test_local_is_safe(void **state)
{
    char buf[100];

    assert_true(addr_local_is_safe("info"));
    assert_true(addr_local_is_safe("global.mobility"));
    assert_true(addr_local_is_safe("a+b-c_d"));
    assert_true(addr_local_is_safe(repeat(buf, 'x', 64, "")));
    assert_false(addr_local_is_safe(repeat(buf, 'x', 65, "")));
    assert_false(addr_local_is_safe(""));
    assert_false(addr_local_is_safe("a/b"));
    assert_false(addr_local_is_safe(".."));
    assert_false(addr_local_is_safe(".a"));
    assert_false(addr_local_is_safe("a."));
    assert_false(addr_local_is_safe("a..b"));
    assert_false(addr_local_is_safe("Info"));
    assert_false(addr_local_is_safe("\"a b\""));
    assert_false(addr_local_is_safe("a\\b"));
}

static void test_strerror(void **state)
{
    for (int e = ADDR_EIDNA; e <= 0; e++)
        assert_string_not_equal(addr_strerror(e), "unknown address error");
    assert_string_equal(addr_strerror(-99), "unknown address error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_full_and_nul),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_domain_total_length),
        cmocka_unit_test(test_domain_norm),
        cmocka_unit_test(test_local_is_safe),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
