package use

import (
	"fmt"
)

// dtype is the element type of a tensor. TensorFlow's int64 (the output of Where) is held as
// int32: every index in this graph is far below 2^31.
type dtype uint8

const (
	f32 dtype = iota
	i32
	boolean
)

func (d dtype) String() string {
	switch d {
	case f32:
		return "float32"
	case i32:
		return "int32"
	default:
		return "bool"
	}
}

// tensor is a dense row-major tensor; exactly one of f, i and b is used, per dt.
type tensor struct {
	dt    dtype
	shape []int
	f     []float32
	i     []int32
	b     []bool
}

func numElems(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func newF32(shape []int) *tensor {
	return &tensor{dt: f32, shape: shape, f: make([]float32, numElems(shape))}
}

func newI32(shape []int) *tensor {
	return &tensor{dt: i32, shape: shape, i: make([]int32, numElems(shape))}
}

func newBool(shape []int) *tensor {
	return &tensor{dt: boolean, shape: shape, b: make([]bool, numElems(shape))}
}

func newLike(dt dtype, shape []int) *tensor {
	switch dt {
	case f32:
		return newF32(shape)
	case i32:
		return newI32(shape)
	default:
		return newBool(shape)
	}
}

func (t *tensor) size() int { return numElems(t.shape) }

// ints returns the values of an int32 tensor as ints (for shapes, axes and indices).
func (t *tensor) ints() ([]int, error) {
	if t.dt != i32 {
		return nil, fmt.Errorf("want an int32 tensor, got %s", t.dt)
	}
	out := make([]int, len(t.i))
	for k, v := range t.i {
		out[k] = int(v)
	}
	return out, nil
}

// scalarInt returns the one value of an int32 tensor of size 1.
func (t *tensor) scalarInt() (int, error) {
	v, err := t.ints()
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("want one value, got shape %v", t.shape)
	}
	return v[0], nil
}

// withShape returns a tensor sharing t's data under another shape of the same size.
func (t *tensor) withShape(shape []int) *tensor {
	return &tensor{dt: t.dt, shape: shape, f: t.f, i: t.i, b: t.b}
}

// copyElem copies element src of s into element dst of d (same dtype).
func copyElem(d *tensor, dst int, s *tensor, src int) {
	switch s.dt {
	case f32:
		d.f[dst] = s.f[src]
	case i32:
		d.i[dst] = s.i[src]
	default:
		d.b[dst] = s.b[src]
	}
}

// copyRange copies n elements from s[src:] to d[dst:].
func copyRange(d *tensor, dst int, s *tensor, src, n int) {
	switch s.dt {
	case f32:
		copy(d.f[dst:dst+n], s.f[src:src+n])
	case i32:
		copy(d.i[dst:dst+n], s.i[src:src+n])
	default:
		copy(d.b[dst:dst+n], s.b[src:src+n])
	}
}

func strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for k := len(shape) - 1; k >= 0; k-- {
		s[k] = acc
		acc *= shape[k]
	}
	return s
}

// normAxis resolves a possibly negative axis against rank.
func normAxis(axis, rank int) (int, error) {
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return axis, nil
}
