/* The shadow policy of a tenant: stored, read back, and evaluated beside
 * the live policy by policy_outbound. */
#include "store_test.h"

/* A tenant with mode off and two entries, and a shadow policy. */
static void load(struct fixture *fx, enum out_mode smode, enum tls_level sl)
{
    struct store_txn *t = fx_write(fx);

    assert_int_equal(store_tenant_add(t, "acme", NULL), 0);
    assert_int_equal(
        store_outbound_add(t, "acme", "vendor.example", TLS_VERIFY), 0);
    assert_int_equal(store_outbound_add(t, "acme", "weak.example", TLS_MAY), 0);
    assert_int_equal(store_outbound_shadow(t, "acme", smode, sl), 0);
    assert_int_equal(store_commit(t), 0);
}

static void test_shadow_stored(void **state)
{
    struct fixture *fx = *state;
    struct tenant_info ti;
    struct store_txn *t;

    load(fx, MODE_ALL, TLS_VERIFY);
    t = fx_read(fx);
    assert_int_equal(store_tenant_get(t, "acme", &ti), 0);
    assert_int_equal(ti.mode, MODE_OFF);
    assert_int_equal(ti.shadow_mode, MODE_ALL);
    assert_int_equal(ti.shadow_level, TLS_VERIFY);
    store_abort(t);

    t = fx_write(fx);
    assert_int_equal(store_outbound_shadow(t, "acme", MODE_ALL, TLS_MAY),
                     STORE_EINVAL);
    assert_int_equal(store_outbound_shadow(t, "nobody", MODE_ALL, TLS_VERIFY),
                     STORE_ENOTFOUND);
    assert_int_equal(store_outbound_shadow(t, "acme", MODE_OFF, TLS_ENCRYPT),
                     0);
    assert_int_equal(store_commit(t), 0);
    t = fx_read(fx);
    assert_int_equal(store_tenant_get(t, "acme", &ti), 0);
    assert_int_equal(ti.shadow_mode, MODE_OFF);
    store_abort(t);
}

static void test_shadow_decision(void **state)
{
    struct fixture *fx = *state;
    struct outbound_decision d;
    struct store_txn *t;

    load(fx, MODE_ALL, TLS_ENCRYPT);
    t = fx_read(fx);
    assert_int_equal(policy_outbound(t, "acme", "a@other.example", &d), 0);
    assert_int_equal(d.level, TLS_NONE);
    assert_true(d.shadow);
    assert_int_equal(d.shadow_level, TLS_ENCRYPT);
    assert_string_equal(d.shadow_rule, "default:mode=all");
    assert_int_equal(policy_outbound(t, "acme", "a@vendor.example", &d), 0);
    assert_int_equal(d.shadow_level, TLS_VERIFY);
    assert_string_equal(d.shadow_rule, "domain:vendor.example");
    assert_int_equal(policy_outbound(t, "acme", "a@weak.example", &d), 0);
    assert_int_equal(d.shadow_level, TLS_ENCRYPT);
    store_abort(t);
}

static void test_shadow_domains(void **state)
{
    struct fixture *fx = *state;
    struct outbound_decision d;
    struct store_txn *t;

    load(fx, MODE_DOMAINS, TLS_ENCRYPT);
    t = fx_read(fx);
    assert_int_equal(policy_outbound(t, "acme", "a@other.example", &d), 0);
    assert_true(d.shadow);
    assert_int_equal(d.shadow_level, TLS_NONE);
    assert_string_equal(d.shadow_rule, "default:unlisted");
    assert_int_equal(policy_outbound(t, "acme", "a@vendor.example", &d), 0);
    assert_int_equal(d.level, TLS_NONE);
    assert_int_equal(d.shadow_level, TLS_VERIFY);
    store_abort(t);
}

static void test_no_shadow(void **state)
{
    struct fixture *fx = *state;
    struct outbound_decision d;
    struct store_txn *t;

    load(fx, MODE_OFF, TLS_ENCRYPT);
    t = fx_read(fx);
    assert_int_equal(policy_outbound(t, "acme", "a@vendor.example", &d), 0);
    assert_false(d.shadow);
    assert_string_equal(d.shadow_rule, "");
    store_abort(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shadow_stored, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_shadow_decision, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_shadow_domains, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_no_shadow, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
