//go:build !amd64

package use

// hasKernel is false off amd64: gemm uses gonum's SGEMM there.
const hasKernel = false

func kernel4x16(k int, a, b, c *float32, ldc int) { panic("use: kernel4x16 is amd64-only") }
