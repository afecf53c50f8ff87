package use

import (
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// The matrix products take nearly all of a forward pass. Where the CPU has AVX2 and FMA they run
// on a register-blocked 4×16 kernel (gemm_amd64.s) over packed panels, blocked so that a B panel
// stays in L1 and a block of A in L2 (the GotoBLAS layout); the weight matrices are packed once
// when the graph is compiled. Elsewhere they run on gonum's SGEMM, whose float32 kernels are
// SSE axpy loops, a few times slower on one core.
const (
	mr = 4   // rows of a micro-tile (A panel height)
	nr = 16  // columns of a micro-tile (B panel width)
	kc = 256 // depth of a block: a 16×256 B panel is 16 KB
	mc = 128 // rows of an A block: 128×256 floats, 128 KB
)

// packedB is op(b), k×n, laid out for the kernel: for each depth block k0 (kc deep, the last one
// shorter), the n columns as panels of nr, each panel kb×nr, k-major, zero-padded past n. Block
// k0 starts at k0*np*nr.
type packedB struct {
	n, k int
	data []float32
}

func (p *packedB) panels() int { return (p.n + nr - 1) / nr }

// packB packs op(b) into dst (grown as needed) and returns it.
func packB(dst *packedB, tb bool, n, k int, b []float32, ldb int) *packedB {
	np := (n + nr - 1) / nr
	size := np * nr * k
	if cap(dst.data) < size {
		dst.data = make([]float32, size)
	}
	dst.n, dst.k, dst.data = n, k, dst.data[:size]
	for k0 := 0; k0 < k; k0 += kc {
		kb := min(kc, k-k0)
		block := dst.data[k0*np*nr:]
		for p := range np {
			panel := block[p*nr*kb : (p+1)*nr*kb]
			j0 := p * nr
			nj := min(nr, n-j0)
			for kk := range kb {
				out := panel[kk*nr : (kk+1)*nr]
				if tb { // op(b)[k][j] = b[j][k]
					for j := range nj {
						out[j] = b[(j0+j)*ldb+k0+kk]
					}
				} else {
					copy(out[:nj], b[(k0+kk)*ldb+j0:(k0+kk)*ldb+j0+nj])
				}
				clear(out[nj:])
			}
		}
	}
	return dst
}

// packA lays rows i0..i0+mb of op(a), columns k0..k0+kb, out as panels of mr rows, each k-major;
// rows past mb are zero.
func packA(dst []float32, ta bool, i0, mb, k0, kb int, a []float32, lda int) {
	for p := 0; p*mr < mb; p++ {
		panel := dst[p*mr*kb : (p+1)*mr*kb]
		for r := range mr {
			if p*mr+r >= mb {
				for kk := range kb {
					panel[kk*mr+r] = 0
				}
				continue
			}
			i := i0 + p*mr + r
			if ta { // op(a)[i][k] = a[k][i]
				for kk := range kb {
					panel[kk*mr+r] = a[(k0+kk)*lda+i]
				}
			} else {
				for kk, v := range a[i*lda+k0 : i*lda+k0+kb] {
					panel[kk*mr+r] = v
				}
			}
		}
	}
}

// scratch holds packing buffers, reused across calls and goroutines.
var scratch = sync.Pool{New: func() any { return new(gemmScratch) }}

type gemmScratch struct {
	a []float32
	b packedB
}

// gemm computes c = op(a)·op(b) for row-major matrices: op(a) is m×k, op(b) is k×n, c is m×n
// with stride n; ta and tb mean a and b are stored transposed.
func gemm(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32) {
	if m == 0 || n == 0 {
		return
	}
	if !hasKernel {
		gemmGonum(ta, tb, m, n, k, a, lda, b, ldb, c)
		return
	}
	s := scratch.Get().(*gemmScratch)
	gemmPacked(ta, m, a, lda, packB(&s.b, tb, n, k, b, ldb), c, s)
	scratch.Put(s)
}

// gemmPacked computes c = op(a)·b for a packed b (kernel builds only).
func gemmPacked(ta bool, m int, a []float32, lda int, pb *packedB, c []float32, s *gemmScratch) {
	n, k := pb.n, pb.k
	clear(c[:m*n])
	if s == nil {
		s = scratch.Get().(*gemmScratch)
		defer scratch.Put(s)
	}
	if need := mc * kc; cap(s.a) < need {
		s.a = make([]float32, need)
	}
	np := pb.panels()
	var tile [mr * nr]float32
	for k0 := 0; k0 < k; k0 += kc {
		kb := min(kc, k-k0)
		block := pb.data[k0*np*nr:]
		for i0 := 0; i0 < m; i0 += mc {
			mb := min(mc, m-i0)
			packA(s.a, ta, i0, mb, k0, kb, a, lda)
			for jp := range np {
				bp := &block[jp*nr*kb]
				j0 := jp * nr
				nj := min(nr, n-j0)
				for ip := 0; ip*mr < mb; ip++ {
					ap := &s.a[ip*mr*kb]
					r0 := i0 + ip*mr
					rows := min(mr, m-r0)
					if rows == mr && nj == nr {
						kernel4x16(kb, ap, bp, &c[r0*n+j0], n)
						continue
					}
					// Partial tile: through a zeroed 4×16 buffer.
					tile = [mr * nr]float32{}
					kernel4x16(kb, ap, bp, &tile[0], nr)
					for r := range rows {
						dst := c[(r0+r)*n+j0 : (r0+r)*n+j0+nj]
						for j, v := range tile[r*nr : r*nr+nj] {
							dst[j] += v
						}
					}
				}
			}
		}
	}
}

// gemmGonum is gemm on gonum's SGEMM.
func gemmGonum(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32) {
	tA, tB := blas.NoTrans, blas.NoTrans
	ar, ac, br, bc := m, k, k, n
	if ta {
		tA, ar, ac = blas.Trans, k, m
	}
	if tb {
		tB, br, bc = blas.Trans, n, k
	}
	blas32.Gemm(tA, tB, 1,
		blas32.General{Rows: ar, Cols: ac, Stride: lda, Data: a},
		blas32.General{Rows: br, Cols: bc, Stride: ldb, Data: b},
		0, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}
