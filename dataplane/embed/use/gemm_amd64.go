package use

import "golang.org/x/sys/cpu"

// hasKernel reports whether kernel4x16 can run here (AVX2 and FMA; every x86-64 server CPU
// since 2013-2015).
var hasKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernel4x16 is in gemm_amd64.s.
//
//go:noescape
func kernel4x16(k int, a, b, c *float32, ldc int)
