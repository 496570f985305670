"""The quantization toolchain: recipes build smaller files, workloads measure them, the toolchain picks one."""
