/* lepton_secagg._kernels._speedups: the C masking kernel.
 *
 * add_masks(vector, keys, signs, suite, offset, threads) -> None
 * quantize_into(values, uniforms, out, clip, scale, levels, weight) -> int (quantize.c)
 * encode_masked(values, out, bits, clip, scale, levels, weight, round_key, keys, signs,
 *               suite, threads[, meanwhile]) -> (clipped, nonfinite): quantise + mask + reduce,
 *               fused; meanwhile() runs (with the GIL) while the worker threads work
 * pack_bits(words, bits, out), unpack_bits(data, bits, out) (pack.c)
 *
 * In place, for each key k: vector[i] += sign_k * word_k[offset + i] (mod 2^w),
 * word_k being the little-endian reading of the suite keystream under keys[k].
 * The contract is lepton_secagg/_kernels/_speedups.pyi; the specification is
 * lepton_secagg/_kernels/_native.py.  See docs/development/native-kernels.md.
 *
 * Work plan: all keys are expanded once; `threads` threads (pthreads) claim
 * 64 KiB chunks of the element range in turn; each chunk is walked in CHUNK_BYTES
 * pieces of the stream and every key is applied to a piece before moving on,
 * so the piece stays in L1 while the keystream is generated in registers and
 * added straight into it.  Kernels are picked at module init from the CPU
 * features (see pick_kernels).  Without AES-NI the aes128ctr suite calls back
 * into the numpy kernel instead of using a table AES.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32)
#include <pthread.h>
#define LS_HAVE_PTHREADS 1
#else
#define LS_HAVE_PTHREADS 0
#endif

#include "kernels.h"

/* Keystream bytes per key per step: the vector piece being worked on. */
#define CHUNK_BYTES (16 * 1024)
/* A worker thread gets at least this many elements. */
#define MIN_ELEMS_PER_THREAD (64 * 1024)
#define MAX_THREADS 64

#define SUITE_AES 0
#define SUITE_CHACHA 1

/* ---- CPU dispatch ------------------------------------------------------- */

int ls_cpu_has(const char *feature)
{
#if LS_X86 && defined(__GNUC__)
    __builtin_cpu_init();
    /* __builtin_cpu_supports needs a literal argument. */
    if (!strcmp(feature, "aes")) return __builtin_cpu_supports("aes") && __builtin_cpu_supports("ssse3");
    if (!strcmp(feature, "vaes256")) return __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("aes");
    if (!strcmp(feature, "vaes512")) return __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("aes");
    if (!strcmp(feature, "avx2")) return __builtin_cpu_supports("avx2");
    if (!strcmp(feature, "avx512f")) return __builtin_cpu_supports("avx512f");
    if (!strcmp(feature, "avx512dq")) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#else
    (void)feature;
#endif
    return 0;
}

/* Candidates from fastest to slowest; the first one the CPU has wins. */
static const ls_kernel *const AES_KERNELS[] = {&ls_aes_vaes512, &ls_aes_vaes256, &ls_aes_aesni};
static const char *const AES_NEEDS[] = {"vaes512", "vaes256", "aes"};
static const ls_kernel *const CHACHA_KERNELS[] = {&ls_chacha_avx512, &ls_chacha_avx2, &ls_chacha_scalar};
static const char *const CHACHA_NEEDS[] = {"avx512f", "avx2", NULL};
static const ls_quant_kernel *const QUANT_KERNELS[] = {&ls_quant_avx512, &ls_quant_generic};
static const char *const QUANT_NEEDS[] = {"avx512dq", NULL};

/* Process-wide choice (CPU features are process-wide); NULL aes = fallback. */
static const ls_kernel *aes_kernel = NULL;
static const ls_kernel *chacha_kernel = &ls_chacha_scalar;
static const ls_quant_kernel *quant_kernel = &ls_quant_generic;

/* A candidate of any table (ls_kernel or ls_quant_kernel) is usable when compiled and the CPU has what it needs. */
#define USABLE(k, needs) ((k)->fn != NULL && ((needs) == NULL || ls_cpu_has(needs)))

static void pick_kernels(void)
{
    aes_kernel = NULL;
    for (size_t i = 0; i < sizeof AES_KERNELS / sizeof *AES_KERNELS; i++)
        if (USABLE(AES_KERNELS[i], AES_NEEDS[i])) {
            aes_kernel = AES_KERNELS[i];
            break;
        }
    chacha_kernel = &ls_chacha_scalar;
    for (size_t i = 0; i < sizeof CHACHA_KERNELS / sizeof *CHACHA_KERNELS; i++)
        if (USABLE(CHACHA_KERNELS[i], CHACHA_NEEDS[i])) {
            chacha_kernel = CHACHA_KERNELS[i];
            break;
        }
    quant_kernel = &ls_quant_generic;
    for (size_t i = 0; i < sizeof QUANT_KERNELS / sizeof *QUANT_KERNELS; i++)
        if (USABLE(QUANT_KERNELS[i], QUANT_NEEDS[i])) {
            quant_kernel = QUANT_KERNELS[i];
            break;
        }
}

/* ---- the driver (no Python objects, runs without the GIL) --------------- */

typedef struct {
    const ls_kernel *kernel;
    const uint8_t *keys;   /* expanded keys, key_stride bytes apart */
    size_t key_stride;
    const int8_t *signs;
    size_t nkeys;
    uint8_t *data;         /* vector bytes */
    uint64_t base_block;   /* block index of base_pos = (offset*itemsize) rounded down to CHUNK_BYTES */
    size_t lead;           /* offset*itemsize - base_pos: relative position of data[0] */
    int w64;
    size_t itemsize;
    unsigned block_shift;  /* log2 of the cipher block: 4 (AES) or 6 (ChaCha20) */
} job_t;

/* v[0 .. nbytes) += / -= scratch words (native words of the vector's width). */
static void add_scratch(uint8_t *v, const uint8_t *ks, size_t nbytes, int w64, int sub)
{
    if (w64) {
        for (size_t i = 0; i < nbytes; i += 8) {
            uint64_t x, k;
            memcpy(&x, v + i, 8);
            memcpy(&k, ks + i, 8);
            x = sub ? x - k : x + k;
            memcpy(v + i, &x, 8);
        }
    } else {
        for (size_t i = 0; i < nbytes; i += 4) {
            uint32_t x, k;
            memcpy(&x, v + i, 4);
            memcpy(&k, ks + i, 4);
            x = sub ? x - k : x + k;
            memcpy(v + i, &x, 4);
        }
    }
}

/* Apply one key to relative stream bytes [p0, p1), which sit at v.
 * Relative position r is stream byte base_pos + r (see job_t). */
static void apply_range(const job_t *job, const void *key, int sub, size_t p0, size_t p1, uint8_t *v)
{
    const ls_kernel *k = job->kernel;
    const unsigned bshift = job->block_shift;
    const size_t bmask = ((size_t)1 << bshift) - 1;
    const size_t batch = k->batch_bytes;
    const uint64_t base = job->base_block;
    uint8_t scratch[LS_MAX_BATCH] __attribute__((aligned(64)));

    if (p0 >= p1)
        return;
    if (p0 & bmask) { /* partial first block: one batch into scratch */
        size_t start = p0 & ~bmask;
        size_t stop = start + batch < p1 ? start + batch : p1;
        memset(scratch, 0, batch);
        k->fn(key, base + (start >> bshift), scratch, 1, job->w64, 0);
        add_scratch(v, scratch + (p0 - start), stop - p0, job->w64, sub);
        v += stop - p0;
        p0 = stop;
    }
    size_t nb = (p1 - p0) / batch;
    if (nb) {
        k->fn(key, base + (p0 >> bshift), v, nb, job->w64, sub);
        v += nb * batch;
        p0 += nb * batch;
    }
    if (p0 < p1) { /* partial last batch (p0 is block-aligned here) */
        memset(scratch, 0, batch);
        k->fn(key, base + (p0 >> bshift), scratch, 1, job->w64, 0);
        add_scratch(v, scratch, p1 - p0, job->w64, sub);
    }
}

/* Elements [e0, e1) of the vector, every key, piece by piece. */
static void run_part(const job_t *job, size_t e0, size_t e1)
{
    const size_t isz = job->itemsize;
    size_t p = job->lead + e0 * isz, end = job->lead + e1 * isz;
    uint8_t *v = job->data + e0 * isz;
    while (p < end) {
        /* pieces end on CHUNK_BYTES boundaries of the stream (base_pos is one) */
        size_t stop = (p | (CHUNK_BYTES - 1)) + 1;
        if (stop > end)
            stop = end;
        if (job->nkeys > 1 && stop < end) {
            /* pull the next piece towards L2 while this one is worked on */
            size_t next = end - stop < CHUNK_BYTES ? end - stop : CHUNK_BYTES;
            for (size_t i = 0; i < next; i += 64)
                __builtin_prefetch(v + (stop - p) + i, 1, 2);
        }
        for (size_t k = 0; k < job->nkeys; k++)
            apply_range(job, job->keys + k * job->key_stride, job->signs[k] < 0, p, stop, v);
        v += stop - p;
        p = stop;
    }
}

/* ---- the worker pool --------------------------------------------------- */

/* The threads, the caller among them, claim 64 KiB chunks of the stream in turn.
 * Claiming chunks (instead of one fixed part per thread) keeps every thread
 * busy to the end when they do not run at the same speed: a thread that
 * starts late, a core shared with another process, or the caller running
 * Python code meanwhile (encode_masked's `meanwhile`). */
#define POOL_CHUNK_BYTES (4 * CHUNK_BYTES)

typedef struct pool pool_t;
struct pool {
    void (*run_chunk)(const pool_t *pool, size_t chunk, size_t counts[2]);
    const void *job;
    size_t n;       /* elements */
    size_t nchunks;
    size_t next;    /* the next chunk to claim (atomic) */
    int stop;       /* nonzero: claim no more (atomic) */
};

typedef struct {
    pool_t *pool;
    size_t counts[2]; /* summed over the worker's chunks (the fused kernel's clipped, nonfinite) */
#if LS_HAVE_PTHREADS
    pthread_t tid;
#endif
    int started;
} worker_t;

static void pool_work(worker_t *w)
{
    pool_t *p = w->pool;
    while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
        size_t c = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (c >= p->nchunks)
            return;
        p->run_chunk(p, c, w->counts);
    }
}

#if LS_HAVE_PTHREADS
static void *worker_main(void *arg)
{
    pool_work((worker_t *)arg);
    return NULL;
}
#endif

/* How many threads work on n elements: `threads`, fewer for short vectors. */
static size_t pool_size(size_t n, long threads)
{
    size_t workers = (size_t)threads;
    if (workers > n / MIN_ELEMS_PER_THREAD)
        workers = n / MIN_ELEMS_PER_THREAD;
    if (workers > MAX_THREADS)
        workers = MAX_THREADS;
    return workers < 1 ? 1 : workers;
}

/* Starts workers - 1 threads on the pool; the caller is w[0] and joins in pool_finish. */
static void pool_start(pool_t *p, worker_t *w, size_t workers)
{
    for (size_t i = 0; i < workers; i++) {
        w[i].pool = p;
        w[i].counts[0] = w[i].counts[1] = 0;
        w[i].started = 0;
    }
#if LS_HAVE_PTHREADS
    for (size_t i = 1; i < workers; i++)
        w[i].started = pthread_create(&w[i].tid, NULL, worker_main, &w[i]) == 0;
#endif
}

/* The caller claims chunks too (all of them where no thread started), then waits for the threads. */
static void pool_finish(pool_t *p, worker_t *w, size_t workers, size_t counts[2])
{
    pool_work(&w[0]);
#if LS_HAVE_PTHREADS
    for (size_t i = 1; i < workers; i++)
        if (w[i].started)
            pthread_join(w[i].tid, NULL);
#endif
    (void)p;
    for (size_t i = 0; i < workers; i++) {
        counts[0] += w[i].counts[0];
        counts[1] += w[i].counts[1];
    }
}

/* add_masks: chunk c is stream bytes [c, c + 1) * POOL_CHUNK_BYTES from base_pos, within the vector. */
static void job_chunk(const pool_t *p, size_t c, size_t counts[2])
{
    (void)counts;
    const job_t *job = (const job_t *)p->job;
    size_t lo = c * POOL_CHUNK_BYTES, hi = lo + POOL_CHUNK_BYTES, end = job->lead + p->n * job->itemsize;
    if (lo < job->lead)
        lo = job->lead;
    if (hi > end)
        hi = end;
    run_part(job, (lo - job->lead) / job->itemsize, (hi - job->lead) / job->itemsize);
}

static void run_job(const job_t *job, size_t n, long threads)
{
    size_t workers = pool_size(n, threads);
    if (workers == 1) {
        run_part(job, 0, n);
        return;
    }
    pool_t p = {job_chunk, job, n, (job->lead + n * job->itemsize + POOL_CHUNK_BYTES - 1) / POOL_CHUNK_BYTES, 0, 0};
    worker_t w[MAX_THREADS];
    size_t counts[2] = {0, 0};
    pool_start(&p, w, workers);
    pool_finish(&p, w, workers, counts);
}

/* ---- the fused client pipeline (encode_masked) -------------------------- */

typedef struct {
    job_t masks;           /* the mask keys over the out words (offset 0) */
    job_t round;           /* the rounding key over 32-bit words (offset 0) */
    const ls_quant_kernel *quant;
    const void *values;
    int f32;
    size_t m;              /* values; out[m:] holds extra ring elements */
    double clip, scale, levels;
    uint64_t weight;
    uint64_t ring_mask;    /* 2^bits - 1 */
} fused_t;

typedef struct {
    const fused_t *f;
    size_t e0, e1;
    size_t clipped, nonfinite;
} fused_part_t;

/* Elements [e0, e1): per 16 KiB piece of the out words, the rounding
 * keystream into an L1 scratch, quantise into the piece, every mask key onto
 * it, reduce mod 2^bits; so each value and out word is touched once. */
static void fused_part(fused_part_t *part)
{
    const fused_t *f = part->f;
    const size_t isz = f->masks.itemsize;
    const int w64 = f->masks.w64;
    uint32_t uw[CHUNK_BYTES / 4] __attribute__((aligned(64)));
    size_t e = part->e0;
    while (e < part->e1) {
        size_t stop = ((e * isz) | (CHUNK_BYTES - 1)) + 1; /* the piece ends on a CHUNK_BYTES boundary */
        size_t eb = stop / isz < part->e1 ? stop / isz : part->e1;
        uint8_t *v = f->masks.data + e * isz;
        size_t qend = eb < f->m ? eb : f->m;
        if (qend > e) {
            size_t qn = qend - e;
            memset(uw, 0, qn * 4);
            apply_range(&f->round, f->round.keys, 0, e * 4, qend * 4, (uint8_t *)uw);
            const void *x = f->f32 ? (const void *)((const float *)f->values + e) : (const void *)((const double *)f->values + e);
            part->clipped += ls_quantize_words(f->quant, x, f->f32, uw, v, w64, qn, f->clip, f->scale, f->levels, f->weight,
                                               &part->nonfinite);
        }
        /* the next piece's values and out words, a share of their lines before each key, so
         * their DRAM reads overlap the keystream work instead of stalling the quantisation */
        size_t nk = f->masks.nkeys, next = part->e1 - eb < CHUNK_BYTES / isz ? part->e1 - eb : CHUNK_BYTES / isz;
        size_t vsz = f->f32 ? 4 : 8, nx = eb < f->m ? (f->m - eb < next ? f->m - eb : next) * vsz : 0;
        const uint8_t *xn = (const uint8_t *)f->values + eb * vsz, *vn = v + (eb - e) * isz;
        for (size_t k = 0; k < nk; k++) {
            for (size_t i = (nx * k / nk) & ~(size_t)63; i < ((nx * (k + 1) / nk) & ~(size_t)63); i += 64)
                __builtin_prefetch(xn + i, 0, 3);
            for (size_t i = (next * isz * k / nk) & ~(size_t)63; i < ((next * isz * (k + 1) / nk) & ~(size_t)63); i += 64)
                __builtin_prefetch(vn + i, 1, 3);
            apply_range(&f->masks, f->masks.keys + k * f->masks.key_stride, f->masks.signs[k] < 0, e * isz, eb * isz, v);
        }
        if (w64 && f->ring_mask != ~(uint64_t)0) {
            for (size_t i = 0; i < eb - e; i++)
                ((uint64_t *)v)[i] &= f->ring_mask;
        } else if (!w64 && f->ring_mask != 0xffffffffu) {
            for (size_t i = 0; i < eb - e; i++)
                ((uint32_t *)v)[i] &= (uint32_t)f->ring_mask;
        }
        e = eb;
    }
    memset(uw, 0, sizeof uw); /* rounding keystream: not a secret the server sees, but private */
}

/* encode_masked: chunk c is out words [c, c + 1) * POOL_CHUNK_BYTES / itemsize. */
static void fused_chunk(const pool_t *p, size_t c, size_t counts[2])
{
    const fused_t *f = (const fused_t *)p->job;
    size_t per = POOL_CHUNK_BYTES / f->masks.itemsize;
    fused_part_t part = {f, c * per, (c + 1) * per < p->n ? (c + 1) * per : p->n, 0, 0};
    fused_part(&part);
    counts[0] += part.clipped;
    counts[1] += part.nonfinite;
}

/* ---- argument checking -------------------------------------------------- */

typedef struct {
    PyObject *native_add_masks; /* lepton_secagg._kernels._native.add_masks, lazily */
} module_state;

/* lepton_secagg._kernels._native.<name>(*args): the numpy kernel, for suites without a C pipeline. */
static PyObject *call_native_function(const char *name, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *mod = PyImport_ImportModule("lepton_secagg._kernels._native");
    if (mod == NULL)
        return NULL;
    PyObject *fn = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    if (fn == NULL)
        return NULL;
    PyObject *res = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return res;
}

static int format_is_unsigned(const char *fmt)
{
    if (fmt == NULL)
        return 0; /* "B" by the buffer protocol: itemsize 1, rejected anyway */
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
        fmt++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    else if (*fmt == '>' || *fmt == '!')
        fmt++;
#endif
    return (fmt[0] == 'I' || fmt[0] == 'L' || fmt[0] == 'Q' || fmt[0] == 'N') && fmt[1] == '\0';
}

/* +1 / -1 as Python's `sign in (1, -1)` sees it (bool excluded); 0 on error. */
static int parse_sign(PyObject *sign)
{
    static const long values[2] = {1, -1};
    if (PyBool_Check(sign)) {
        PyErr_Format(PyExc_ValueError, "signs must be +1 or -1, got %R.", sign);
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (v == NULL)
            return 0;
        int eq = PyObject_RichCompareBool(sign, v, Py_EQ);
        Py_DECREF(v);
        if (eq < 0)
            return 0;
        if (eq)
            return (int)values[i];
    }
    PyErr_Format(PyExc_ValueError, "signs must be +1 or -1, got %R.", sign);
    return 0;
}

static PyObject *call_native(PyObject *module, PyObject *const *args, Py_ssize_t nargs, int w64)
{
    module_state *st = (module_state *)PyModule_GetState(module);
    if (st->native_add_masks == NULL) {
        PyObject *mod = PyImport_ImportModule("lepton_secagg._kernels._native");
        if (mod == NULL)
            return NULL;
        st->native_add_masks = PyObject_GetAttrString(mod, "add_masks");
        Py_DECREF(mod);
        if (st->native_add_masks == NULL)
            return NULL;
    }
    /* The numpy kernel wants an ndarray: view the buffer as one (no copy). */
    PyObject *np = PyImport_ImportModule("numpy");
    if (np == NULL)
        return NULL;
    PyObject *arr = PyObject_CallMethod(np, "frombuffer", "Os", args[0], w64 ? "<u8" : "<u4");
    Py_DECREF(np);
    if (arr == NULL)
        return NULL;
    PyObject *call_args[6] = {arr, args[1], args[2], args[3], args[4], args[5]};
    PyObject *res = PyObject_Vectorcall(st->native_add_masks, call_args, nargs, NULL);
    Py_DECREF(arr);
    if (res == NULL)
        return NULL;
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* The suite name: SUITE_AES / SUITE_CHACHA and its key size; -1 with ValueError set. */
static int parse_suite(PyObject *suite_obj, size_t *key_size)
{
    if (PyUnicode_Check(suite_obj) && PyUnicode_CompareWithASCIIString(suite_obj, "aes128ctr") == 0) {
        *key_size = 16;
        return SUITE_AES;
    }
    if (PyUnicode_Check(suite_obj) && PyUnicode_CompareWithASCIIString(suite_obj, "chacha20") == 0) {
        *key_size = 32;
        return SUITE_CHACHA;
    }
    PyErr_Format(PyExc_ValueError, "unknown PRG suite %R; choose one of ['aes128ctr', 'chacha20'].", suite_obj);
    return -1;
}

/* threads >= 1 (capped at MAX_THREADS); 0 with ValueError set. */
static long parse_threads(PyObject *threads_obj)
{
    if (!PyLong_Check(threads_obj) || PyBool_Check(threads_obj)) {
        PyErr_Format(PyExc_ValueError, "threads must be a positive int, got %R.", threads_obj);
        return 0;
    }
    int overflow = 0;
    long threads = PyLong_AsLongAndOverflow(threads_obj, &overflow);
    if (threads == -1 && PyErr_Occurred())
        return 0;
    if (overflow > 0)
        threads = MAX_THREADS;
    if (overflow < 0 || threads < 1) {
        PyErr_Format(PyExc_ValueError, "threads must be a positive int, got %R.", threads_obj);
        return 0;
    }
    return threads;
}

/* Copies the keys (each key_size bytes) into *raw_keys and the +1/-1 signs into
 * *sign_arr (both PyMem_Malloc'ed; the caller wipes and frees them); returns the
 * number of keys, or -1 with an exception set and both left NULL. */
static Py_ssize_t parse_keys(PyObject *keys_seq, PyObject *signs_seq, int suite, size_t key_size,
                             uint8_t **raw_keys, int8_t **sign_arr)
{
    Py_ssize_t nkeys = PySequence_Fast_GET_SIZE(keys_seq);
    *raw_keys = NULL;
    *sign_arr = NULL;
    if (PySequence_Fast_GET_SIZE(signs_seq) != nkeys) {
        PyErr_Format(PyExc_ValueError, "got %zd keys but %zd signs.", nkeys, PySequence_Fast_GET_SIZE(signs_seq));
        return -1;
    }
    *raw_keys = (uint8_t *)PyMem_Malloc(nkeys ? (size_t)nkeys * key_size : 1);
    *sign_arr = (int8_t *)PyMem_Malloc(nkeys ? (size_t)nkeys : 1);
    if (*raw_keys == NULL || *sign_arr == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(keys_seq, i);
        const char *kb;
        Py_ssize_t klen;
        if (PyBytes_Check(key)) {
            kb = PyBytes_AS_STRING(key);
            klen = PyBytes_GET_SIZE(key);
        } else if (PyByteArray_Check(key)) {
            kb = PyByteArray_AS_STRING(key);
            klen = PyByteArray_GET_SIZE(key);
        } else {
            PyErr_Format(PyExc_TypeError, "keys must be bytes, not %.100s.", Py_TYPE(key)->tp_name);
            goto fail;
        }
        if ((size_t)klen != key_size) {
            PyErr_Format(PyExc_ValueError, "a %s key is %zu bytes, got %zd.",
                         suite == SUITE_AES ? "aes128ctr" : "chacha20", key_size, klen);
            goto fail;
        }
        memcpy(*raw_keys + (size_t)i * key_size, kb, key_size);
        int s = parse_sign(PySequence_Fast_GET_ITEM(signs_seq, i));
        if (s == 0)
            goto fail;
        (*sign_arr)[i] = (int8_t)s;
    }
    return nkeys;
fail:
    if (*raw_keys != NULL) {
        memset(*raw_keys, 0, nkeys ? (size_t)nkeys * key_size : 1);
        PyMem_Free(*raw_keys);
    }
    PyMem_Free(*sign_arr);
    *raw_keys = NULL;
    *sign_arr = NULL;
    return -1;
}

static PyObject *add_masks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError,
                     "add_masks() takes 6 positional arguments (vector, keys, signs, suite, offset, threads), got %zd.",
                     nargs);
        return NULL;
    }
    PyObject *vector = args[0], *keys = args[1], *signs = args[2], *suite_obj = args[3];
    PyObject *offset_obj = args[4], *threads_obj = args[5];

    size_t key_size;
    int suite = parse_suite(suite_obj, &key_size);
    if (suite < 0)
        return NULL;

    /* offset, threads */
    if (!PyLong_Check(offset_obj) || PyBool_Check(offset_obj)) {
        PyErr_Format(PyExc_ValueError, "offset must be a non-negative int, got %R.", offset_obj);
        return NULL;
    }
    unsigned long long offset = PyLong_AsUnsignedLongLong(offset_obj);
    if (offset == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "offset must be a non-negative int below 2**64, got %R.", offset_obj);
        return NULL;
    }
    long threads = parse_threads(threads_obj);
    if (threads == 0)
        return NULL;

    /* keys, signs */
    PyObject *keys_seq = PySequence_Fast(keys, "keys must be a sequence of bytes.");
    if (keys_seq == NULL)
        return NULL;
    PyObject *signs_seq = PySequence_Fast(signs, "signs must be a sequence of +1/-1 ints.");
    if (signs_seq == NULL) {
        Py_DECREF(keys_seq);
        return NULL;
    }
    PyObject *result = NULL;
    uint8_t *raw_keys = NULL, *expanded = NULL;
    int8_t *sign_arr = NULL;
    Py_buffer view;
    int have_view = 0;

    Py_ssize_t nkeys = parse_keys(keys_seq, signs_seq, suite, key_size, &raw_keys, &sign_arr);
    if (nkeys < 0)
        goto done;

    /* vector */
    if (PyObject_GetBuffer(vector, &view, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "vector must support the buffer protocol (a uint32/uint64 numpy array), not %.100s.",
                     Py_TYPE(vector)->tp_name);
        goto done;
    }
    have_view = 1;
    if (view.itemsize != 4 && view.itemsize != 8) {
        PyErr_Format(PyExc_TypeError, "vector items must be 4 or 8 bytes (uint32 or uint64), got %zd-byte items.",
                     view.itemsize);
        goto done;
    }
    if (!format_is_unsigned(view.format)) {
        PyErr_Format(PyExc_TypeError,
                     "vector must hold native unsigned integers (format 'I', 'L' or 'Q'), got format %s.",
                     view.format ? view.format : "B");
        goto done;
    }
    if (view.readonly) {
        PyErr_SetString(PyExc_ValueError, "vector must be writable.");
        goto done;
    }
    if (view.ndim != 1) {
        PyErr_Format(PyExc_ValueError, "vector must be 1-D, got %d dimensions.", view.ndim);
        goto done;
    }
    if (!PyBuffer_IsContiguous(&view, 'C')) {
        PyErr_SetString(PyExc_ValueError, "vector must be C-contiguous.");
        goto done;
    }
    size_t n = (size_t)(view.len / view.itemsize);
    int w64 = view.itemsize == 8;
    {
        unsigned __int128 end = ((unsigned __int128)offset + n) * (unsigned)view.itemsize;
        unsigned __int128 limit = suite == SUITE_AES ? (unsigned __int128)1 << 64 : (unsigned __int128)64 << 32;
        if (end > limit) {
            PyErr_Format(PyExc_ValueError, "the mask range ends past the %s stream limit of %llu bytes.",
                         suite == SUITE_AES ? "aes128ctr" : "chacha20",
                         suite == SUITE_AES ? 18446744073709551615ULL : (unsigned long long)64 << 32);
            goto done;
        }
    }
    if (nkeys == 0 || n == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }

    const ls_kernel *kernel = suite == SUITE_AES ? aes_kernel : chacha_kernel;
    if (kernel == NULL) { /* no AES-NI: the numpy kernel, never a table AES */
        PyBuffer_Release(&view);
        have_view = 0;
        result = call_native(module, args, nargs, w64);
        goto done;
    }

    size_t stride = suite == SUITE_AES ? LS_AES_KEY_BYTES : LS_CHACHA_KEY_BYTES;
    expanded = (uint8_t *)PyMem_RawMalloc((size_t)nkeys * stride + 64);
    if (expanded == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t *ek = (uint8_t *)(((uintptr_t)expanded + 63) & ~(uintptr_t)63);
    /* Positions are kept relative to a CHUNK_BYTES-aligned base so that the
     * end of the stream (2^64 bytes for AES) never overflows a uint64_t. */
    uint64_t start_pos = (uint64_t)offset * (uint64_t)view.itemsize; /* < 2^64: n >= 1 */
    uint64_t base_pos = start_pos & ~(uint64_t)(CHUNK_BYTES - 1);
    unsigned bshift = suite == SUITE_AES ? 4u : 6u;
    job_t job = {kernel, ek, stride, sign_arr, (size_t)nkeys, (uint8_t *)view.buf,
                 base_pos >> bshift, (size_t)(start_pos - base_pos), w64, (size_t)view.itemsize, bshift};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        if (suite == SUITE_AES)
            ls_aes128_expand(raw_keys + (size_t)i * 16, ek + (size_t)i * stride);
        else
            ls_chacha_setup(raw_keys + (size_t)i * 32, ek + (size_t)i * stride);
    }
    run_job(&job, n, threads);
    /* the expanded keys are key material: wipe them */
    memset(expanded, 0, (size_t)nkeys * stride + 64);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);

done:
    if (have_view)
        PyBuffer_Release(&view);
    if (raw_keys != NULL) {
        memset(raw_keys, 0, nkeys > 0 ? (size_t)nkeys * key_size : 1);
        PyMem_Free(raw_keys);
    }
    PyMem_Free(sign_arr);
    PyMem_RawFree(expanded);
    Py_DECREF(keys_seq);
    Py_DECREF(signs_seq);
    return result;
}

/* ---- quantize_into ------------------------------------------------------ */

/* "d" (native float64), with an optional native byte-order prefix. */
static int format_is_double(const char *fmt)
{
    if (fmt == NULL)
        return 0;
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
        fmt++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    else if (*fmt == '>' || *fmt == '!')
        fmt++;
#endif
    return fmt[0] == 'd' && fmt[1] == '\0';
}

/* A C-contiguous buffer view of `obj` (any shape); 0 with an exception set on failure. */
static int get_array_view(PyObject *obj, Py_buffer *view, const char *name, int writable)
{
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_RECORDS : PyBUF_RECORDS_RO) < 0) {
        if (writable && PyObject_CheckBuffer(obj)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s must be writable.", name);
            return 0;
        }
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must support the buffer protocol (a numpy array), not %.100s.", name,
                     Py_TYPE(obj)->tp_name);
        return 0;
    }
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous.", name);
        return 0;
    }
    return 1;
}

static PyObject *quantize_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError,
                     "quantize_into() takes 7 positional arguments "
                     "(values, uniforms, out, clip, scale, levels, weight), got %zd.",
                     nargs);
        return NULL;
    }
    PyObject *clip_obj = args[3], *scale_obj = args[4], *levels_obj = args[5], *weight_obj = args[6];

    /* scalars */
    if (!PyFloat_Check(clip_obj) || !PyFloat_Check(scale_obj)) {
        PyErr_Format(PyExc_TypeError, "clip and scale must be floats, got %.100s and %.100s.",
                     Py_TYPE(clip_obj)->tp_name, Py_TYPE(scale_obj)->tp_name);
        return NULL;
    }
    double clip = PyFloat_AS_DOUBLE(clip_obj), scale = PyFloat_AS_DOUBLE(scale_obj);
    if (!PyLong_Check(levels_obj) || PyBool_Check(levels_obj) || !PyLong_Check(weight_obj) || PyBool_Check(weight_obj)) {
        PyErr_Format(PyExc_TypeError, "levels and weight must be ints, got %.100s and %.100s.",
                     Py_TYPE(levels_obj)->tp_name, Py_TYPE(weight_obj)->tp_name);
        return NULL;
    }
    unsigned long long levels = PyLong_AsUnsignedLongLong(levels_obj);
    /* <= 2^63: then min(q, levels) <= 2^63 always converts to a uint64 exactly */
    if ((levels == (unsigned long long)-1 && PyErr_Occurred()) || levels < 1 || levels > (1ULL << 63)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "levels must be an int in 1..2**63, got %R.", levels_obj);
        return NULL;
    }
    unsigned long long weight = PyLong_AsUnsignedLongLong(weight_obj);
    if (weight == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "weight must be an int in 0..2**64-1, got %R.", weight_obj);
        return NULL;
    }

    /* buffers */
    Py_buffer vv, uv, ov;
    if (!get_array_view(args[0], &vv, "values", 0))
        return NULL;
    if (!get_array_view(args[1], &uv, "uniforms", 0)) {
        PyBuffer_Release(&vv);
        return NULL;
    }
    if (!get_array_view(args[2], &ov, "out", 1)) {
        PyBuffer_Release(&vv);
        PyBuffer_Release(&uv);
        return NULL;
    }
    PyObject *result = NULL;
    if (vv.itemsize != 8 || !format_is_double(vv.format)) {
        PyErr_Format(PyExc_TypeError, "values must hold native float64 (format 'd'), got format %s.",
                     vv.format ? vv.format : "B");
        goto done;
    }
    if (uv.itemsize != 8 || !format_is_double(uv.format)) {
        PyErr_Format(PyExc_TypeError, "uniforms must hold native float64 (format 'd'), got format %s.",
                     uv.format ? uv.format : "B");
        goto done;
    }
    if ((ov.itemsize != 4 && ov.itemsize != 8) || !format_is_unsigned(ov.format)) {
        PyErr_Format(PyExc_TypeError, "out must hold native uint32 or uint64 (format 'I', 'L' or 'Q'), got format %s.",
                     ov.format ? ov.format : "B");
        goto done;
    }
    size_t n = (size_t)(vv.len / 8);
    if ((size_t)(uv.len / 8) != n || (size_t)(ov.len / ov.itemsize) != n) {
        PyErr_Format(PyExc_ValueError, "values, uniforms and out must have the same length, got %zd, %zd and %zd.",
                     vv.len / 8, uv.len / 8, ov.len / ov.itemsize);
        goto done;
    }
    size_t clipped;
    int w64 = ov.itemsize == 8;
    Py_BEGIN_ALLOW_THREADS
    clipped = ls_quantize_into((const double *)vv.buf, (const double *)uv.buf, ov.buf, w64, n, clip, scale,
                               (double)levels, (uint64_t)weight);
    Py_END_ALLOW_THREADS
    result = PyLong_FromSize_t(clipped);

done:
    PyBuffer_Release(&vv);
    PyBuffer_Release(&uv);
    PyBuffer_Release(&ov);
    return result;
}

/* ---- encode_masked, pack_bits, unpack_bits ------------------------------ */

static int format_is_float(const char *fmt)
{
    if (fmt == NULL)
        return 0;
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
        fmt++;
    return fmt[0] == 'f' && fmt[1] == '\0';
}

/* bits in 1..64; 0 with ValueError set. */
static unsigned parse_bits(PyObject *obj)
{
    long bits = PyLong_Check(obj) && !PyBool_Check(obj) ? PyLong_AsLong(obj) : -1;
    if (bits < 1 || bits > 64) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "bits must be an int in 1..64, got %R.", obj);
        return 0;
    }
    return (unsigned)bits;
}

static PyObject *encode_masked(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 12 && nargs != 13) {
        PyErr_Format(PyExc_TypeError,
                     "encode_masked() takes 12 or 13 positional arguments (values, out, bits, clip, scale, levels, weight, "
                     "round_key, keys, signs, suite, threads[, meanwhile]), got %zd.", nargs);
        return NULL;
    }
    unsigned bits = parse_bits(args[2]);
    if (bits == 0)
        return NULL;
    if (!PyFloat_Check(args[3]) || !PyFloat_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "clip and scale must be floats.");
        return NULL;
    }
    double clip = PyFloat_AS_DOUBLE(args[3]), scale = PyFloat_AS_DOUBLE(args[4]);
    if (!PyLong_Check(args[5]) || PyBool_Check(args[5]) || !PyLong_Check(args[6]) || PyBool_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "levels and weight must be ints.");
        return NULL;
    }
    unsigned long long levels = PyLong_AsUnsignedLongLong(args[5]);
    if ((levels == (unsigned long long)-1 && PyErr_Occurred()) || levels < 1 || levels > (1ULL << 63)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "levels must be an int in 1..2**63, got %R.", args[5]);
        return NULL;
    }
    unsigned long long weight = PyLong_AsUnsignedLongLong(args[6]);
    if (weight == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "weight must be an int in 0..2**64-1, got %R.", args[6]);
        return NULL;
    }
    size_t key_size;
    int suite = parse_suite(args[10], &key_size);
    if (suite < 0)
        return NULL;
    long threads = parse_threads(args[11]);
    if (threads == 0)
        return NULL;
    if (!PyBytes_Check(args[7]) || (size_t)PyBytes_GET_SIZE(args[7]) != key_size) {
        PyErr_Format(PyExc_ValueError, "round_key must be %zu bytes.", key_size);
        return NULL;
    }
    PyObject *meanwhile = nargs == 13 && args[12] != Py_None ? args[12] : NULL;
    if (meanwhile != NULL && !PyCallable_Check(meanwhile)) {
        PyErr_SetString(PyExc_TypeError, "meanwhile must be a callable or None.");
        return NULL;
    }
    const ls_kernel *kernel = suite == SUITE_AES ? aes_kernel : chacha_kernel;
    if (kernel == NULL) /* no AES-NI: the numpy kernel, never a table AES */
        return call_native_function("encode_masked", args, nargs);

    PyObject *keys_seq = PySequence_Fast(args[8], "keys must be a sequence of bytes.");
    if (keys_seq == NULL)
        return NULL;
    PyObject *signs_seq = PySequence_Fast(args[9], "signs must be a sequence of +1/-1 ints.");
    if (signs_seq == NULL) {
        Py_DECREF(keys_seq);
        return NULL;
    }
    PyObject *result = NULL;
    uint8_t *raw_keys = NULL, *expanded = NULL;
    int8_t *sign_arr = NULL;
    Py_buffer vv, ov;
    int have_v = 0, have_o = 0;
    Py_ssize_t nkeys = parse_keys(keys_seq, signs_seq, suite, key_size, &raw_keys, &sign_arr);
    if (nkeys < 0)
        goto done;
    if (!get_array_view(args[0], &vv, "values", 0))
        goto done;
    have_v = 1;
    if (!get_array_view(args[1], &ov, "out", 1))
        goto done;
    have_o = 1;
    int f32 = vv.itemsize == 4 && format_is_float(vv.format);
    if (!f32 && !(vv.itemsize == 8 && format_is_double(vv.format))) {
        PyErr_Format(PyExc_TypeError, "values must hold native float32 or float64, got format %s.",
                     vv.format ? vv.format : "B");
        goto done;
    }
    int w64 = bits > 32;
    if (ov.itemsize != (w64 ? 8 : 4) || !format_is_unsigned(ov.format)) {
        PyErr_Format(PyExc_TypeError, "out must hold native %s words for %u-bit rings.", w64 ? "uint64" : "uint32", bits);
        goto done;
    }
    size_t m = (size_t)(vv.len / vv.itemsize), n = (size_t)(ov.len / ov.itemsize);
    if (n < m) {
        PyErr_Format(PyExc_ValueError, "out has %zu words, fewer than the %zu values.", n, m);
        goto done;
    }
    if ((unsigned __int128)n * ov.itemsize > (suite == SUITE_AES ? (unsigned __int128)1 << 64 : (unsigned __int128)64 << 32)) {
        PyErr_SetString(PyExc_ValueError, "the vector runs past the end of the mask stream.");
        goto done;
    }
    size_t stride = suite == SUITE_AES ? LS_AES_KEY_BYTES : LS_CHACHA_KEY_BYTES;
    expanded = (uint8_t *)PyMem_RawMalloc((size_t)(nkeys + 1) * stride + 64);
    if (expanded == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint8_t *ek = (uint8_t *)(((uintptr_t)expanded + 63) & ~(uintptr_t)63);
    unsigned bshift = suite == SUITE_AES ? 4u : 6u;
    fused_t f = {
        {kernel, ek + stride, stride, sign_arr, (size_t)nkeys, (uint8_t *)ov.buf, 0, 0, w64, (size_t)ov.itemsize, bshift},
        {kernel, ek, stride, NULL, 1, NULL, 0, 0, 0, 4, bshift},
        quant_kernel, vv.buf, f32, m, clip, scale, (double)levels, (uint64_t)weight,
        bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1),
    };
    const uint8_t *round_key = (const uint8_t *)PyBytes_AS_STRING(args[7]);
    size_t counts[2] = {0, 0}; /* clipped, nonfinite */
    pool_t pool = {fused_chunk, &f, n, (n * (size_t)ov.itemsize + POOL_CHUNK_BYTES - 1) / POOL_CHUNK_BYTES, 0, 0};
    worker_t workers[MAX_THREADS];
    size_t nworkers = pool_size(n, threads);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = -1; i < nkeys; i++) {
        const uint8_t *raw = i < 0 ? round_key : raw_keys + (size_t)i * key_size;
        if (suite == SUITE_AES)
            ls_aes128_expand(raw, ek + (size_t)(i + 1) * stride);
        else
            ls_chacha_setup(raw, ek + (size_t)(i + 1) * stride);
    }
    pool_start(&pool, workers, nworkers);
    Py_END_ALLOW_THREADS
    /* the caller's Python work runs (GIL held) while the threads work; the caller joins them after */
    PyObject *exc_type = NULL, *exc_value = NULL, *exc_tb = NULL;
    if (meanwhile != NULL) {
        PyObject *r = PyObject_CallNoArgs(meanwhile);
        if (r == NULL) {
            __atomic_store_n(&pool.stop, 1, __ATOMIC_RELAXED);
            PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        }
        Py_XDECREF(r);
    }
    Py_BEGIN_ALLOW_THREADS
    pool_finish(&pool, workers, nworkers, counts);
    memset(expanded, 0, (size_t)(nkeys + 1) * stride + 64);
    Py_END_ALLOW_THREADS
    if (exc_type != NULL)
        PyErr_Restore(exc_type, exc_value, exc_tb); /* out is left part-written: the caller discards it */
    else
        result = Py_BuildValue("(nn)", (Py_ssize_t)counts[0], (Py_ssize_t)counts[1]);

done:
    if (have_v)
        PyBuffer_Release(&vv);
    if (have_o)
        PyBuffer_Release(&ov);
    if (raw_keys != NULL) {
        memset(raw_keys, 0, nkeys > 0 ? (size_t)nkeys * key_size : 1);
        PyMem_Free(raw_keys);
    }
    PyMem_Free(sign_arr);
    PyMem_RawFree(expanded);
    Py_DECREF(keys_seq);
    Py_DECREF(signs_seq);
    return result;
}

/* The checks of _native._check_pack_args; fills the views (released by the caller on success). */
static int pack_views(PyObject *const *args, Py_buffer *wv, Py_buffer *bv, unsigned *bits, int words_writable)
{
    *bits = parse_bits(args[1]);
    if (*bits == 0)
        return 0;
    if (!get_array_view(args[0], wv, words_writable ? "out" : "words", words_writable))
        return 0;
    if (!get_array_view(args[2], bv, "the packed bytes", !words_writable)) {
        PyBuffer_Release(wv);
        return 0;
    }
    const char *err = NULL;
    if ((wv->itemsize != 4 && wv->itemsize != 8) || !format_is_unsigned(wv->format))
        err = "the words must be a uint32 or uint64 numpy array.";
    else if (bv->itemsize != 1 || (bv->format != NULL && strcmp(bv->format, "B") != 0))
        err = "the packed bytes must be a uint8 numpy array.";
    if (err != NULL) {
        PyErr_SetString(PyExc_TypeError, err);
    } else if (*bits > 8 * (unsigned)wv->itemsize) {
        PyErr_Format(PyExc_ValueError, "%u-bit elements do not fit %zd-byte words.", *bits, wv->itemsize);
    } else {
        size_t n = (size_t)(wv->len / wv->itemsize);
        size_t need = (size_t)(((unsigned __int128)n * *bits + 7) / 8);
        if ((size_t)bv->len == need)
            return 1;
        PyErr_Format(PyExc_ValueError, "%zu elements of %u bits take %zu bytes, got %zd.", n, *bits, need, bv->len);
    }
    PyBuffer_Release(wv);
    PyBuffer_Release(bv);
    return 0;
}

static PyObject *pack_bits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "pack_bits() takes 3 positional arguments (words, bits, out), got %zd.", nargs);
        return NULL;
    }
    Py_buffer wv, bv;
    unsigned bits;
    if (!pack_views(args, &wv, &bv, &bits, 0))
        return NULL;
    int over;
    Py_BEGIN_ALLOW_THREADS
    over = ls_pack_bits(wv.buf, wv.itemsize == 8, (size_t)(wv.len / wv.itemsize), bits, (uint8_t *)bv.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&wv);
    PyBuffer_Release(&bv);
    if (over) {
        PyErr_Format(PyExc_ValueError, "an element is >= 2^%u; reduce the vector mod 2^%u before packing.", bits, bits);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *unpack_bits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "unpack_bits() takes 3 positional arguments (data, bits, out), got %zd.", nargs);
        return NULL;
    }
    PyObject *swapped[3] = {args[2], args[1], args[0]}; /* pack_views wants (words, bits, bytes) */
    Py_buffer wv, bv;
    unsigned bits;
    if (!pack_views(swapped, &wv, &bv, &bits, 1))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    ls_unpack_bits((const uint8_t *)bv.buf, (size_t)bv.len, bits, (size_t)(wv.len / wv.itemsize), wv.buf, wv.itemsize == 8);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&wv);
    PyBuffer_Release(&bv);
    Py_RETURN_NONE;
}

/* ---- private helpers for tests and benchmarks --------------------------- */

static PyObject *kernel_names(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return Py_BuildValue("{ssssss}", "aes128ctr", aes_kernel ? aes_kernel->name : "numpy",
                         "chacha20", chacha_kernel->name, "quantize", quant_kernel->name);
}

/* list.append(name); 0 with an exception set on failure. */
static int append_name(PyObject *list, const char *name)
{
    PyObject *s = PyUnicode_FromString(name);
    int ok = s != NULL && PyList_Append(list, s) == 0;
    Py_XDECREF(s);
    return ok;
}

static PyObject *available_kernels(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *aes = PyList_New(0), *cha = PyList_New(0), *quant = PyList_New(0);
    if (aes == NULL || cha == NULL || quant == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof AES_KERNELS / sizeof *AES_KERNELS; i++)
        if (USABLE(AES_KERNELS[i], AES_NEEDS[i])) {
            if (!append_name(aes, AES_KERNELS[i]->name))
                goto fail;
        }
    for (size_t i = 0; i < sizeof CHACHA_KERNELS / sizeof *CHACHA_KERNELS; i++)
        if (USABLE(CHACHA_KERNELS[i], CHACHA_NEEDS[i])) {
            if (!append_name(cha, CHACHA_KERNELS[i]->name))
                goto fail;
        }
    for (size_t i = 0; i < sizeof QUANT_KERNELS / sizeof *QUANT_KERNELS; i++)
        if (USABLE(QUANT_KERNELS[i], QUANT_NEEDS[i])) {
            if (!append_name(quant, QUANT_KERNELS[i]->name))
                goto fail;
        }
    return Py_BuildValue("{sNsNsN}", "aes128ctr", aes, "chacha20", cha, "quantize", quant);
fail:
    Py_XDECREF(aes);
    Py_XDECREF(cha);
    Py_XDECREF(quant);
    return NULL;
}

/* _set_kernels(aes, chacha[, quantize]): force a kernel by name ("numpy" =
 * fallback for aes, None = keep); _set_kernels() restores the automatic choice. */
static PyObject *set_kernels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs == 0) {
        pick_kernels();
        Py_RETURN_NONE;
    }
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_set_kernels() takes no arguments or (aes, chacha[, quantize]).");
        return NULL;
    }
    const ls_kernel *new_aes = aes_kernel, *new_cha = chacha_kernel;
    const ls_quant_kernel *new_quant = quant_kernel;
    if (args[0] != Py_None) {
        const char *name = PyUnicode_AsUTF8(args[0]);
        if (name == NULL)
            return NULL;
        int found = 0;
        if (!strcmp(name, "numpy")) {
            new_aes = NULL;
            found = 1;
        }
        for (size_t i = 0; !found && i < sizeof AES_KERNELS / sizeof *AES_KERNELS; i++)
            if (!strcmp(name, AES_KERNELS[i]->name) && USABLE(AES_KERNELS[i], AES_NEEDS[i])) {
                new_aes = AES_KERNELS[i];
                found = 1;
            }
        if (!found) {
            PyErr_Format(PyExc_ValueError, "no usable aes128ctr kernel named %R on this CPU.", args[0]);
            return NULL;
        }
    }
    if (args[1] != Py_None) {
        const char *name = PyUnicode_AsUTF8(args[1]);
        if (name == NULL)
            return NULL;
        int found = 0;
        for (size_t i = 0; !found && i < sizeof CHACHA_KERNELS / sizeof *CHACHA_KERNELS; i++)
            if (!strcmp(name, CHACHA_KERNELS[i]->name) && USABLE(CHACHA_KERNELS[i], CHACHA_NEEDS[i])) {
                new_cha = CHACHA_KERNELS[i];
                found = 1;
            }
        if (!found) {
            PyErr_Format(PyExc_ValueError, "no usable chacha20 kernel named %R on this CPU.", args[1]);
            return NULL;
        }
    }
    if (nargs == 3 && args[2] != Py_None) {
        const char *name = PyUnicode_AsUTF8(args[2]);
        if (name == NULL)
            return NULL;
        int found = 0;
        for (size_t i = 0; !found && i < sizeof QUANT_KERNELS / sizeof *QUANT_KERNELS; i++)
            if (!strcmp(name, QUANT_KERNELS[i]->name) && USABLE(QUANT_KERNELS[i], QUANT_NEEDS[i])) {
                new_quant = QUANT_KERNELS[i];
                found = 1;
            }
        if (!found) {
            PyErr_Format(PyExc_ValueError, "no usable quantisation kernel named %R on this CPU.", args[2]);
            return NULL;
        }
    }
    aes_kernel = new_aes;
    chacha_kernel = new_cha;
    quant_kernel = new_quant;
    Py_RETURN_NONE;
}

/* ---- module ------------------------------------------------------------- */

PyDoc_STRVAR(add_masks_doc,
"add_masks(vector, keys, signs, suite, offset, threads)\n--\n\n"
"In place: vector[i] += sign_k * word_k[offset + i] for each key k.\n\n"
"vector is a writable C-contiguous buffer of 4- or 8-byte unsigned words;\n"
"word_k is the little-endian reading of the suite keystream under keys[k]\n"
"(\"aes128ctr\": 16-byte keys, 128-bit big-endian counter from 0; \"chacha20\":\n"
"RFC 8439, 32-byte keys, zero nonce, counter from 0).  signs are +1/-1.\n"
"threads >= 1 splits the element range across workers.  The GIL is released.");

PyDoc_STRVAR(quantize_into_doc,
"quantize_into(values, uniforms, out, clip, scale, levels, weight) -> int\n--\n\n"
"Fused quantisation: out[i] = min(floor(s) + (uniforms[i] < s - floor(s)), levels) * weight\n"
"(mod the out width) with s = (clip(values[i], -clip, clip) + clip) * scale; returns\n"
"how many values were clipped.  values and uniforms are C-contiguous float64 buffers,\n"
"out a writable C-contiguous uint32/uint64 buffer of the same length.  The GIL is released.");

PyDoc_STRVAR(encode_masked_doc,
"encode_masked(values, out, bits, clip, scale, levels, weight, round_key, keys, signs, suite, threads, meanwhile=None)\n--\n\n"
"The fused client pipeline: quantise values (stochastic rounding from the round_key keystream),\n"
"add every mask, reduce mod 2^bits, into out; returns (clipped, nonfinite).  meanwhile() runs\n"
"while the worker threads work.  See _speedups.pyi.");

static PyMethodDef methods[] = {
    {"encode_masked", (PyCFunction)(void (*)(void))encode_masked, METH_FASTCALL, encode_masked_doc},
    {"pack_bits", (PyCFunction)(void (*)(void))pack_bits, METH_FASTCALL, "pack_bits(words, bits, out): see _speedups.pyi."},
    {"unpack_bits", (PyCFunction)(void (*)(void))unpack_bits, METH_FASTCALL, "unpack_bits(data, bits, out): see _speedups.pyi."},
    {"add_masks", (PyCFunction)(void (*)(void))add_masks, METH_FASTCALL, add_masks_doc},
    {"quantize_into", (PyCFunction)(void (*)(void))quantize_into, METH_FASTCALL, quantize_into_doc},
    {"_kernels", kernel_names, METH_NOARGS, "The kernel used per suite (private; for tests and benchmarks)."},
    {"_available_kernels", available_kernels, METH_NOARGS, "Kernels this CPU can run, fastest first (private)."},
    {"_set_kernels", (PyCFunction)(void (*)(void))set_kernels, METH_FASTCALL,
     "Force kernels by name, or restore the automatic choice with no arguments (private)."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module)
{
    module_state *st = (module_state *)PyModule_GetState(module);
    st->native_add_masks = NULL;
    pick_kernels();
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = (module_state *)PyModule_GetState(module);
    Py_VISIT(st->native_add_masks);
    return 0;
}

static int module_clear(PyObject *module)
{
    module_state *st = (module_state *)PyModule_GetState(module);
    Py_CLEAR(st->native_add_masks);
    return 0;
}

static void module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "lepton_secagg._kernels._speedups",
    .m_doc = "C masking kernels (AES-NI/VAES AES-128-CTR, SIMD ChaCha20) and fused quantisation for lepton_secagg.",
    .m_size = sizeof(module_state),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    return PyModuleDef_Init(&moduledef);
}
