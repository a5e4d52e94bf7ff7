/* lepton_secagg._kernels._field: Prio3 field kernels (Field64, Field128).
 *
 * transform(buf, rows, n, words, twiddles, pre, scale) -> None
 * dot(values, rows, n, words, weights, out) -> None
 *
 * Elements are little-endian limbs of native uint64 (words = 1: Field64,
 * p = 2^64 - 2^32 + 1; words = 2: Field128, p = 2^66 * 4611686018427387897 + 1),
 * every element below p.  The contract is lepton_secagg/_kernels/_field.pyi;
 * the specification is _native.field_transform / _native.field_dot.
 *
 * Field64 multiplies through a 128-bit product and its remainder.  Field128
 * uses Montgomery multiplication (R = 2^128): the constants (twiddles, pre,
 * scale, weights) are moved into Montgomery form once, and a product of a
 * plain element with a Montgomery constant is the plain product, so the data
 * itself never changes form.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

static const uint64_t P64 = 0xFFFFFFFF00000001ULL;
static const u128 P128 = ((u128)0xFFFFFFFFFFFFFFE4ULL << 64) | 1u;
static const u128 R2_128 = ((u128)0x5587ULL << 64) | 0xFFFFFFFFFFFFFCF1ULL; /* 2^256 mod p */

/* ---- Field64 ---------------------------------------------------------------- */
static inline uint64_t f64_add(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;
    return (s < a || s >= P64) ? s - P64 : s;
}
static inline uint64_t f64_sub(uint64_t a, uint64_t b) { return a >= b ? a - b : a - b + P64; }
static inline uint64_t f64_mul(uint64_t a, uint64_t b) { return (uint64_t)(((u128)a * b) % P64); }

/* ---- Field128 --------------------------------------------------------------- */
static inline u128 f128_add(u128 a, u128 b)
{
    u128 s = a + b;
    return (s < a || s >= P128) ? s - P128 : s;
}
static inline u128 f128_sub(u128 a, u128 b) { return a >= b ? a - b : a - b + P128; }

/* a * b * 2^-128 mod p (CIOS, two 64-bit limbs; -p^-1 = -1 mod 2^64 since p = 1 mod 2^64). */
static inline u128 f128_mont(u128 a, u128 b)
{
    const uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64);
    const uint64_t p1 = (uint64_t)(P128 >> 64);
    uint64_t t0 = 0, t1 = 0, t2 = 0;
    for (int i = 0; i < 2; i++) {
        const uint64_t bi = i ? (uint64_t)(b >> 64) : (uint64_t)b;
        u128 c = (u128)a0 * bi + t0;
        t0 = (uint64_t)c;
        c = (c >> 64) + (u128)a1 * bi + t1;
        t1 = (uint64_t)c;
        c = (c >> 64) + t2;
        t2 = (uint64_t)c;
        const uint64_t t3 = (uint64_t)(c >> 64);
        const uint64_t m = (uint64_t)0 - t0; /* t0 * (-p^-1) mod 2^64 */
        c = (u128)m + t0;                    /* m * p0 + t0, p0 = 1: low word cancels */
        c = (c >> 64) + (u128)m * p1 + t1;
        t0 = (uint64_t)c;
        c = (c >> 64) + t2;
        t1 = (uint64_t)c;
        t2 = t3 + (uint64_t)(c >> 64);
    }
    u128 r = ((u128)t1 << 64) | t0;
    return (t2 || r >= P128) ? r - P128 : r;
}

static inline u128 load128(const uint64_t *x) { return ((u128)x[1] << 64) | x[0]; }
static inline void store128(uint64_t *x, u128 v)
{
    x[0] = (uint64_t)v;
    x[1] = (uint64_t)(v >> 64);
}

/* ---- the transforms ---------------------------------------------------------- */
static size_t bitrev(size_t i, int log_n)
{
    size_t r = 0;
    for (int b = 0; b < log_n; b++)
        r |= ((i >> b) & 1u) << (log_n - 1 - b);
    return r;
}

static void transform64(uint64_t *buf, size_t rows, size_t n, const uint64_t *tw, const uint64_t *pre,
                        const uint64_t *scale, uint64_t *a)
{
    int log_n = 0;
    while (((size_t)1 << log_n) < n)
        log_n++;
    for (size_t r = 0; r < rows; r++) {
        uint64_t *row = buf + r * n;
        for (size_t i = 0; i < n; i++) {
            size_t j = bitrev(i, log_n);
            a[j] = pre ? f64_mul(row[i], pre[i]) : row[i];
        }
        for (size_t half = 1; half < n; half <<= 1) {
            size_t step = n / (2 * half);
            for (size_t start = 0; start < n; start += 2 * half)
                for (size_t j = 0; j < half; j++) {
                    uint64_t u = a[start + j], v = f64_mul(a[start + j + half], tw[j * step]);
                    a[start + j] = f64_add(u, v);
                    a[start + j + half] = f64_sub(u, v);
                }
        }
        for (size_t i = 0; i < n; i++)
            row[i] = scale ? f64_mul(a[i], *scale) : a[i];
    }
}

static void transform128(uint64_t *buf, size_t rows, size_t n, const u128 *tw, const u128 *pre, const u128 *scale,
                         u128 *a)
{
    int log_n = 0;
    while (((size_t)1 << log_n) < n)
        log_n++;
    for (size_t r = 0; r < rows; r++) {
        uint64_t *row = buf + 2 * r * n;
        for (size_t i = 0; i < n; i++) {
            u128 x = load128(row + 2 * i);
            a[bitrev(i, log_n)] = pre ? f128_mont(x, pre[i]) : x;
        }
        for (size_t half = 1; half < n; half <<= 1) {
            size_t step = n / (2 * half);
            for (size_t start = 0; start < n; start += 2 * half)
                for (size_t j = 0; j < half; j++) {
                    u128 u = a[start + j], v = f128_mont(a[start + j + half], tw[j * step]);
                    a[start + j] = f128_add(u, v);
                    a[start + j + half] = f128_sub(u, v);
                }
        }
        for (size_t i = 0; i < n; i++)
            store128(row + 2 * i, scale ? f128_mont(a[i], *scale) : a[i]);
    }
}

/* ---- argument handling ----------------------------------------------------------- */
/* A C-contiguous buffer of 8-byte items holding exactly `count` uint64s; 0 with an exception on failure. */
static int get_words(PyObject *obj, Py_buffer *view, const char *name, Py_ssize_t count, int writable)
{
    if (PyObject_GetBuffer(obj, view, writable ? (PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) : PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a %sC-contiguous uint64 buffer.", name, writable ? "writable " : "");
        return 0;
    }
    if (view->itemsize != 8 || view->len != count * 8) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd uint64 words, got %zd bytes of %zd-byte items.", name, count,
                     view->len, view->itemsize);
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static int below_p(const uint64_t *x, Py_ssize_t count, int words)
{
    for (Py_ssize_t i = 0; i < count; i++)
        if (words == 1 ? x[i] >= P64 : load128(x + 2 * i) >= P128)
            return 0;
    return 1;
}

static int get_shape(PyObject *const *args, Py_ssize_t *rows, Py_ssize_t *n, int *words)
{
    *rows = PyLong_AsSsize_t(args[1]);
    *n = PyLong_AsSsize_t(args[2]);
    long w = PyLong_AsLong(args[3]);
    if (PyErr_Occurred())
        return 0;
    if (*rows < 0 || *n < 1 || (*n & (*n - 1)) || *n > ((Py_ssize_t)1 << 30) || (w != 1 && w != 2)) {
        PyErr_SetString(PyExc_ValueError, "rows >= 0, n a power of two up to 2^30, words 1 or 2.");
        return 0;
    }
    *words = (int)w;
    return 1;
}

static PyObject *transform(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "transform(buf, rows, n, words, twiddles, pre, scale) takes 7 arguments.");
        return NULL;
    }
    Py_ssize_t rows, n;
    int words;
    if (!get_shape(args, &rows, &n, &words))
        return NULL;
    Py_buffer vb, tb, pb = {0}, sb = {0};
    int have_pre = args[5] != Py_None, have_scale = args[6] != Py_None;
    if (!get_words(args[0], &vb, "buf", rows * n * words, 1))
        return NULL;
    if (!get_words(args[4], &tb, "twiddles", (n / 2 ? n / 2 : 1) * words, 0)) {
        PyBuffer_Release(&vb);
        return NULL;
    }
    if ((have_pre && !get_words(args[5], &pb, "pre", n * words, 0)) ||
        (have_scale && !get_words(args[6], &sb, "scale", words, 0))) {
        if (pb.obj) PyBuffer_Release(&pb);
        PyBuffer_Release(&tb);
        PyBuffer_Release(&vb);
        return NULL;
    }
    PyObject *result = NULL;
    const uint64_t *tw = tb.buf, *pre = have_pre ? pb.buf : NULL, *scale = have_scale ? sb.buf : NULL;
    size_t ntw = n / 2 ? (size_t)n / 2 : 1;
    if (!below_p(vb.buf, rows * n, words) || !below_p(tw, ntw, words) || (pre && !below_p(pre, n, words)) ||
        (scale && !below_p(scale, 1, words))) {
        PyErr_SetString(PyExc_ValueError, "every element must be below the field modulus.");
        goto done;
    }
    if (words == 1) {
        uint64_t *a = malloc(sizeof(uint64_t) * (size_t)n);
        if (!a) { PyErr_NoMemory(); goto done; }
        Py_BEGIN_ALLOW_THREADS
        transform64(vb.buf, (size_t)rows, (size_t)n, tw, pre, scale, a);
        Py_END_ALLOW_THREADS
        free(a);
    } else {
        u128 *a = malloc(sizeof(u128) * (size_t)n), *twm = malloc(sizeof(u128) * ntw);
        u128 *prem = pre ? malloc(sizeof(u128) * (size_t)n) : NULL, scalem = 0;
        if (!a || !twm || (pre && !prem)) {
            free(a); free(twm); free(prem);
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        for (size_t i = 0; i < ntw; i++)
            twm[i] = f128_mont(load128(tw + 2 * i), R2_128);
        for (size_t i = 0; pre && i < (size_t)n; i++)
            prem[i] = f128_mont(load128(pre + 2 * i), R2_128);
        if (scale)
            scalem = f128_mont(load128(scale), R2_128);
        transform128(vb.buf, (size_t)rows, (size_t)n, twm, prem, scale ? &scalem : NULL, a);
        Py_END_ALLOW_THREADS
        free(a); free(twm); free(prem);
    }
    result = Py_None;
    Py_INCREF(result);
done:
    if (have_scale) PyBuffer_Release(&sb);
    if (have_pre) PyBuffer_Release(&pb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&vb);
    return result;
}

static PyObject *dot(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "dot(values, rows, n, words, weights, out) takes 6 arguments.");
        return NULL;
    }
    Py_ssize_t rows, n;
    int words;
    if (!get_shape(args, &rows, &n, &words))
        return NULL;
    Py_buffer vb, wb, ob;
    if (!get_words(args[0], &vb, "values", rows * n * words, 0))
        return NULL;
    if (!get_words(args[4], &wb, "weights", n * words, 0)) {
        PyBuffer_Release(&vb);
        return NULL;
    }
    if (!get_words(args[5], &ob, "out", rows * words, 1)) {
        PyBuffer_Release(&wb);
        PyBuffer_Release(&vb);
        return NULL;
    }
    PyObject *result = NULL;
    const uint64_t *v = vb.buf, *w = wb.buf;
    uint64_t *out = ob.buf;
    if (!below_p(v, rows * n, words) || !below_p(w, n, words)) {
        PyErr_SetString(PyExc_ValueError, "every element must be below the field modulus.");
        goto done;
    }
    if (words == 1) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < rows; r++) {
            uint64_t acc = 0;
            for (Py_ssize_t k = 0; k < n; k++)
                acc = f64_add(acc, f64_mul(v[r * n + k], w[k]));
            out[r] = acc;
        }
        Py_END_ALLOW_THREADS
    } else {
        u128 *wm = malloc(sizeof(u128) * (size_t)n);
        if (!wm) { PyErr_NoMemory(); goto done; }
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n; k++)
            wm[k] = f128_mont(load128(w + 2 * k), R2_128);
        for (Py_ssize_t r = 0; r < rows; r++) {
            u128 acc = 0;
            for (Py_ssize_t k = 0; k < n; k++)
                acc = f128_add(acc, f128_mont(load128(v + 2 * (r * n + k)), wm[k]));
            store128(out + 2 * r, acc);
        }
        Py_END_ALLOW_THREADS
        free(wm);
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&ob);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&vb);
    return result;
}

static PyMethodDef methods[] = {
    {"transform", (PyCFunction)(void (*)(void))transform, METH_FASTCALL,
     "transform(buf, rows, n, words, twiddles, pre, scale): in-place radix-2 NTT of each row (see _field.pyi)."},
    {"dot", (PyCFunction)(void (*)(void))dot, METH_FASTCALL,
     "dot(values, rows, n, words, weights, out): out[r] = sum_k values[r, k] * weights[k] mod p."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_field", "Prio3 field kernels (Field64, Field128).", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__field(void) { return PyModule_Create(&module); }
