/* Runs a Python file in an embedded CPython, as drover does
 * (bench/pylink/run.sh links it against libpython3.X.so and .a). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.py\n", argv[0]);
        return 2;
    }
    Py_Initialize();
    FILE *f = fopen(argv[1], "r");
    int rc = f ? PyRun_SimpleFileEx(f, argv[1], 1) : -1;
    if (Py_FinalizeEx() < 0)
        rc = -1;
    return rc ? 1 : 0;
}
