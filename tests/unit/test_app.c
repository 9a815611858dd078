/*
 * Unit tests for app.c: which kind of app a spec names. Python takes
 * module paths and *.py files (with or without an attribute); native
 * takes shared objects and other paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"

static void test_module_specs_are_python(void **state)
{
    (void)state;
    assert_false(drv_app_spec_is_native("app"));
    assert_false(drv_app_spec_is_native("app:application"));
    assert_false(drv_app_spec_is_native("pkg.sub:create_app()"));
    assert_false(drv_app_spec_is_native("pkg.sub:create_app('a/b')"));
    assert_false(drv_app_spec_is_native("dash_app:app.server"));
}

static void test_python_files_are_python(void **state)
{
    (void)state;
    assert_false(drv_app_spec_is_native("app.py"));
    assert_false(drv_app_spec_is_native("app.py:app"));
    assert_false(drv_app_spec_is_native("./智能门店看板_Dash版.py:app"));
    assert_false(drv_app_spec_is_native("/srv/my.pyramid/site.py:app"));
    assert_false(drv_app_spec_is_native("dir/app.py:create_app(x=1)"));
}

static void test_shared_objects_and_other_paths_are_native(void **state)
{
    (void)state;
    assert_true(drv_app_spec_is_native("hello.so"));
    assert_true(drv_app_spec_is_native("hello.so:hello_app"));
    assert_true(drv_app_spec_is_native("./build/hello.so:hello_app"));
    assert_true(drv_app_spec_is_native("/opt/app/libapp.so.1:app"));
    assert_true(drv_app_spec_is_native("/srv/my.pyramid/app.so:app"));
    assert_true(drv_app_spec_is_native("/srv/my.pyc/app.so:app"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_module_specs_are_python),
        cmocka_unit_test(test_python_files_are_python),
        cmocka_unit_test(test_shared_objects_and_other_paths_are_native),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
