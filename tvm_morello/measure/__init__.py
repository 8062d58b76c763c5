"""Measuring compiled kernels: the fast builder, wall-clock timing beside numpy, meta-schedule records, and the
micro-kernel measurer the dynamic tuner records its runs with."""
