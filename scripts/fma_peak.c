/* Peak fp32 FMA throughput of this machine: independent vector FMA chains on every core (OpenMP), in the widest
 * ISA the CPU has (AVX-512 or AVX2, chosen at run time). Prints GFLOP/s (best of 3 runs), then the ISA.
 * Built with gcc -O3 -fopenmp by bench_synth.py; no -march flag, so one binary serves every x86 host. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#define CHAINS 12 /* >= FMA units x FMA latency on every current core, and 12 + 2 fit 16 ymm registers */
#define ITERATIONS 100000000L

__attribute__((target("avx512f"))) static float chains_avx512(void) {
    __m512 acc[CHAINS];
    const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < ITERATIONS; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    float sink = 0;
    for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
    return sink;
}

__attribute__((target("avx2,fma"))) static float chains_avx2(void) {
    __m256 acc[CHAINS];
    const __m256 a = _mm256_set1_ps(1.0000001f), b = _mm256_set1_ps(0.9999999f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < ITERATIONS; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    float lanes[8], sink = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_ps(lanes, acc[c]);
        for (int l = 0; l < 8; l++) sink += lanes[l];
    }
    return sink;
}

int main(int argc, char **argv) {
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && !(argc > 1 && strcmp(argv[1], "avx2") == 0);
    int lanes = avx512 ? 16 : 8;
    double best = 0;
    float sink = 0;
    for (int run = 0; run < 3; run++) {
        double start = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
        sink += avx512 ? chains_avx512() : chains_avx2();
        double seconds = omp_get_wtime() - start;
        double gflops = 2.0 * lanes * CHAINS * (double)ITERATIONS * omp_get_max_threads() / seconds / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("%.2f %s %f\n", best, avx512 ? "avx512" : "avx2", sink);
    return 0;
}
