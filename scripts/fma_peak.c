/* Built with -O3 -march=native by bench_synth.py. Peak fp32 FMA throughput of this machine: independent vector FMA chains on every core (OpenMP). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define CHAINS 12
int main(void) {
    const long iterations = 50000000;
    double start = omp_get_wtime();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
        __m512 acc[CHAINS];
        const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
        for (long i = 0; i < iterations; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
        for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
    }
    double seconds = omp_get_wtime() - start;
    double flops = 2.0 * 16 * CHAINS * (double)iterations * omp_get_max_threads();
    printf("%.2f %f\n", flops / seconds / 1e9, sink);
    return 0;
}
