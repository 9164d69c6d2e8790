/* BENCH.md's W1 and W2 through libmemcached (memcached_set/memcached_get and memcached_mget
 * with memcached_fetch_result), configured as its users leave it (default behaviors), so
 * that mcbench can report its figures beside the Rust clients' in one interleaved run
 * (`mcbench --adapter libmemcached,...`). Prints the same JSON line as mcbench.
 *
 *   cc -O2 -o libmemcached-bench bench/libmemcached.c -lmemcached
 *   libmemcached-bench 127.0.0.1:PORT W1|W2
 */
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VALUE_LEN 100
#define PRELOAD 10000
#define W1_ITEMS 20000
#define W2_ROUNDS 2000
#define W2_KEYS 100

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void fail(const char *what, memcached_st *mc, memcached_return_t rc) {
    fprintf(stderr, "BENCH FAILURE: %s: %s\n", what, mc ? memcached_strerror(mc, rc) : "");
    exit(1);
}

/* BENCH.md: `bench:%06d`. */
static size_t key(char *out, int i) { return (size_t)sprintf(out, "bench:%06d", i); }

/* BENCH.md: `v%08d|`, then the alphabet from letter i % 26, cut at n bytes. */
static void value(char *out, int i, size_t n) {
    char head[16];
    sprintf(head, "v%08d|", i);
    for (size_t k = 0; k < n; k++) out[k] = k < 10 ? head[k] : (char)('a' + (i + (k - 10)) % 26);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *w, long ops, double secs, double *lat, size_t n) {
    qsort(lat, n, sizeof *lat, cmp_double);
    size_t p99 = (size_t)(n * 0.99);
    if (p99 >= n) p99 = n - 1;
    printf("{\"client\":\"libmemcached %s\",\"workload\":\"%s\",\"ops\":%ld,\"secs\":%.3f,"
           "\"ops_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
           LIBMEMCACHED_VERSION_STRING, w, ops, secs, ops / secs, lat[n / 2], lat[p99]);
}

static void set(memcached_st *mc, int i) {
    char k[32], v[VALUE_LEN];
    size_t kl = key(k, i);
    value(v, i, VALUE_LEN);
    memcached_return_t rc = memcached_set(mc, k, kl, v, VALUE_LEN, 0, 0);
    if (rc != MEMCACHED_SUCCESS) fail("set", mc, rc);
}

static void w1(memcached_st *mc) {
    double *lat = malloc(sizeof(double) * 2 * W1_ITEMS);
    char k[32], v[VALUE_LEN];
    double start = now_us();
    for (int i = 0; i < W1_ITEMS; i++) {
        double t = now_us();
        set(mc, i);
        lat[2 * i] = now_us() - t;
        t = now_us();
        size_t kl = key(k, i), len;
        uint32_t flags;
        memcached_return_t rc;
        char *got = memcached_get(mc, k, kl, &len, &flags, &rc);
        lat[2 * i + 1] = now_us() - t;
        value(v, i, VALUE_LEN);
        if (!got || len != VALUE_LEN || memcmp(got, v, VALUE_LEN)) fail("get: wrong value", mc, rc);
        free(got);
    }
    report("W1", 2 * W1_ITEMS, (now_us() - start) / 1e6, lat, 2 * W1_ITEMS);
}

/* The keys of every round and the expected value of every key are made before the clock
 * starts, as mcbench does for the Rust clients: the timed loop is the client's work and the
 * check, not sprintf (which cost about 16 us per round, a seventh of a round, and so flattered
 * every client compared with this one). */
static void w2(memcached_st *mc) {
    for (int i = 0; i < PRELOAD; i++) set(mc, i);
    char (*keys)[W2_KEYS][16] = malloc(sizeof(*keys) * W2_ROUNDS);
    size_t(*lens)[W2_KEYS] = malloc(sizeof(*lens) * W2_ROUNDS);
    char(*values)[VALUE_LEN] = malloc(sizeof(*values) * PRELOAD);
    if (!keys || !lens || !values) fail("out of memory", NULL, MEMCACHED_FAILURE);
    for (int r = 0; r < W2_ROUNDS; r++)
        for (int k = 0; k < W2_KEYS; k++) lens[r][k] = key(keys[r][k], (r * 7919 + k) % PRELOAD);
    for (int i = 0; i < PRELOAD; i++) value(values[i], i, VALUE_LEN);
    const char *ptrs[W2_KEYS];
    double *lat = malloc(sizeof(double) * W2_ROUNDS);
    memcached_result_st result;
    if (!memcached_result_create(mc, &result)) fail("result", mc, MEMCACHED_FAILURE);
    double start = now_us();
    for (int r = 0; r < W2_ROUNDS; r++) {
        for (int k = 0; k < W2_KEYS; k++) ptrs[k] = keys[r][k];
        double t = now_us();
        memcached_return_t rc = memcached_mget(mc, ptrs, lens[r], W2_KEYS);
        if (rc != MEMCACHED_SUCCESS) fail("mget", mc, rc);
        int found = 0;
        while (memcached_fetch_result(mc, &result, &rc)) {
            int i = atoi(memcached_result_key_value(&result) + 6);
            int k = ((i - r * 7919) % PRELOAD + PRELOAD) % PRELOAD; /* its place in the round */
            if (i < 0 || i >= PRELOAD || k >= W2_KEYS || memcached_result_length(&result) != VALUE_LEN ||
                memcmp(memcached_result_value(&result), values[i], VALUE_LEN))
                fail("mget: wrong value", mc, rc);
            found++;
        }
        lat[r] = now_us() - t;
        if (found != W2_KEYS) fail("mget: keys missing", mc, rc);
    }
    memcached_result_free(&result);
    report("W2", (long)W2_ROUNDS * W2_KEYS, (now_us() - start) / 1e6, lat, W2_ROUNDS);
    free(keys);
    free(lens);
    free(values);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: libmemcached-bench HOST:PORT W1|W2\n");
        return 2;
    }
    char host[256];
    snprintf(host, sizeof host, "%s", argv[1]);
    char *colon = strrchr(host, ':');
    if (!colon) fail("address has no port", NULL, MEMCACHED_FAILURE);
    *colon = 0;
    memcached_st *mc = memcached_create(NULL);
    memcached_return_t rc = memcached_server_add(mc, host, (in_port_t)atoi(colon + 1));
    if (rc != MEMCACHED_SUCCESS) fail("server_add", mc, rc);
    if (!strcmp(argv[2], "W1")) w1(mc);
    else if (!strcmp(argv[2], "W2")) w2(mc);
    else fail("workload must be W1 or W2", NULL, MEMCACHED_FAILURE);
    memcached_free(mc);
    return 0;
}
