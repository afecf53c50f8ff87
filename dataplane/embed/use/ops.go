package use

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// opFunc runs one node on its inputs. It must not write to its inputs (constants are shared
// between runs and goroutines).
type opFunc func(n *node, in []*tensor) ([]*tensor, error)

// ops holds the TensorFlow ops that the USE-lite graph uses, with the semantics of TensorFlow's
// kernels restricted to what the graph needs (an unsupported attribute is an error, not a silent
// difference).
var ops map[string]opFunc

func init() {
	ops = map[string]opFunc{
		"Add":           binaryOp(opAdd),
		"AddV2":         binaryOp(opAdd),
		"Sub":           binaryOp(opSub),
		"Mul":           binaryOp(opMul),
		"RealDiv":       binaryOp(opDiv),
		"Maximum":       binaryOp(opMax),
		"Less":          binaryOp(opLess),
		"Greater":       binaryOp(opGreater),
		"Square":        unary(func(x float32) float32 { return x * x }),
		"Rsqrt":         unary(func(x float32) float32 { return float32(1 / math.Sqrt(float64(x))) }),
		"Sin":           unary(func(x float32) float32 { return float32(math.Sin(float64(x))) }),
		"Cos":           unary(func(x float32) float32 { return float32(math.Cos(float64(x))) }),
		"Tanh":          unary(func(x float32) float32 { return float32(math.Tanh(float64(x))) }),
		"Relu":          unary(func(x float32) float32 { return max(x, 0) }),
		"LogicalNot":    logicalNot,
		"Cast":          cast,
		"Shape":         shapeOp,
		"Reshape":       reshape,
		"ExpandDims":    expandDims,
		"Squeeze":       squeeze,
		"Pack":          pack,
		"ConcatV2":      concat,
		"StridedSlice":  stridedSlice,
		"Slice":         sliceOp,
		"GatherV2":      gatherV2,
		"GatherNd":      gatherNd,
		"ScatterNd":     scatterNd,
		"SparseToDense": sparseToDense,
		"Where":         where,
		"Range":         rangeOp,
		"SplitV":        splitV,
		"Transpose":     transpose,
		"Sum":           reduce(redSum),
		"Mean":          reduce(redMean),
		"Max":           reduce(redMax),
		"Prod":          reduce(redProd),
		"Softmax":       softmax,
		"BiasAdd":       biasAdd,
		"MatMul":        matMul,
		"BatchMatMul":   batchMatMul,
		"BatchMatMulV2": batchMatMul,
		"Conv2D":        conv2D,
	}
}

func one(t *tensor) []*tensor { return []*tensor{t} }

func nargs(in []*tensor, want int) error {
	if len(in) < want {
		return fmt.Errorf("want %d inputs, got %d", want, len(in))
	}
	return nil
}

// ---- element-wise ----

type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
	opMax
	opLess
	opGreater
)

// broadcastShape returns the NumPy-broadcast shape of a and b and, per output dimension, the
// element stride of each operand (0 where it is broadcast).
func broadcastShape(a, b []int) (out, sa, sb []int, err error) {
	r := max(len(a), len(b))
	out = make([]int, r)
	sa = make([]int, r)
	sb = make([]int, r)
	pa := strides(a)
	pb := strides(b)
	for k := range r {
		da, db := 1, 1
		ka, kb := k-(r-len(a)), k-(r-len(b))
		if ka >= 0 {
			da = a[ka]
		}
		if kb >= 0 {
			db = b[kb]
		}
		switch {
		case da == db:
			out[k] = da
		case da == 1:
			out[k] = db
		case db == 1:
			out[k] = da
		default:
			return nil, nil, nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
		if ka >= 0 && da != 1 {
			sa[k] = pa[ka]
		}
		if kb >= 0 && db != 1 {
			sb[k] = pb[kb]
		}
	}
	return out, sa, sb, nil
}

// forRows calls fn for each innermost row of a broadcast iteration over shape, with the flat
// offsets of the row's first element in the output and in each operand.
func forRows(shape, sa, sb []int, fn func(o, a, b, n, as, bs int)) {
	r := len(shape)
	if r == 0 {
		fn(0, 0, 0, 1, 0, 0)
		return
	}
	n := shape[r-1]
	total := numElems(shape)
	if total == 0 {
		return
	}
	idx := make([]int, r-1)
	a, b := 0, 0
	for o := 0; o < total; o += n {
		fn(o, a, b, n, sa[r-1], sb[r-1])
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			a += sa[d]
			b += sb[d]
			if idx[d] < shape[d] {
				break
			}
			a -= sa[d] * shape[d]
			b -= sb[d] * shape[d]
			idx[d] = 0
		}
	}
}

func binaryOp(op binOp) opFunc {
	return func(n *node, in []*tensor) ([]*tensor, error) {
		if err := nargs(in, 2); err != nil {
			return nil, err
		}
		x, y := in[0], in[1]
		if x.dt != y.dt {
			return nil, fmt.Errorf("dtypes %s and %s differ", x.dt, y.dt)
		}
		shape, sa, sb, err := broadcastShape(x.shape, y.shape)
		if err != nil {
			return nil, err
		}
		switch {
		case op == opLess || op == opGreater:
			o := newBool(shape)
			forRows(shape, sa, sb, func(oo, a, b, m, as, bs int) {
				for k := range m {
					var lt, gt bool
					if x.dt == f32 {
						lt, gt = x.f[a] < y.f[b], x.f[a] > y.f[b]
					} else {
						lt, gt = x.i[a] < y.i[b], x.i[a] > y.i[b]
					}
					o.b[oo+k] = (op == opLess && lt) || (op == opGreater && gt)
					a += as
					b += bs
				}
			})
			return one(o), nil
		case x.dt == f32:
			o := x
			if !n.inplace || !slices.Equal(shape, x.shape) {
				o = newF32(shape)
			}
			forRows(shape, sa, sb, func(oo, a, b, m, as, bs int) {
				dst := o.f[oo : oo+m]
				switch op {
				case opAdd:
					for k := range dst {
						dst[k] = x.f[a] + y.f[b]
						a += as
						b += bs
					}
				case opSub:
					for k := range dst {
						dst[k] = x.f[a] - y.f[b]
						a += as
						b += bs
					}
				case opMul:
					for k := range dst {
						dst[k] = x.f[a] * y.f[b]
						a += as
						b += bs
					}
				case opDiv:
					for k := range dst {
						dst[k] = x.f[a] / y.f[b]
						a += as
						b += bs
					}
				case opMax:
					for k := range dst {
						dst[k] = max(x.f[a], y.f[b])
						a += as
						b += bs
					}
				}
			})
			return one(o), nil
		case x.dt == i32:
			o := newI32(shape)
			var divZero bool
			forRows(shape, sa, sb, func(oo, a, b, m, as, bs int) {
				for k := range m {
					u, v := x.i[a], y.i[b]
					var r int32
					switch op {
					case opAdd:
						r = u + v
					case opSub:
						r = u - v
					case opMul:
						r = u * v
					case opDiv:
						if v == 0 {
							divZero = true
						} else {
							r = u / v
						}
					case opMax:
						r = max(u, v)
					}
					o.i[oo+k] = r
					a += as
					b += bs
				}
			})
			if divZero {
				return nil, errors.New("integer division by zero")
			}
			return one(o), nil
		}
		return nil, fmt.Errorf("unsupported dtype %s", x.dt)
	}
}

func unary(f func(float32) float32) opFunc {
	return func(n *node, in []*tensor) ([]*tensor, error) {
		if err := nargs(in, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if x.dt != f32 {
			return nil, fmt.Errorf("want float32, got %s", x.dt)
		}
		o := x
		if !n.inplace {
			o = newF32(x.shape)
		}
		for k, v := range x.f {
			o.f[k] = f(v)
		}
		return one(o), nil
	}
}

func logicalNot(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 1); err != nil {
		return nil, err
	}
	if in[0].dt != boolean {
		return nil, fmt.Errorf("want bool, got %s", in[0].dt)
	}
	o := newBool(in[0].shape)
	for k, v := range in[0].b {
		o.b[k] = !v
	}
	return one(o), nil
}

func cast(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 1); err != nil {
		return nil, err
	}
	dst, err := n.attrType("DstT")
	if err != nil {
		return nil, err
	}
	x := in[0]
	if x.dt == dst {
		return one(x), nil
	}
	o := newLike(dst, x.shape)
	for k := range x.size() {
		var v float64
		switch x.dt {
		case f32:
			v = float64(x.f[k])
		case i32:
			v = float64(x.i[k])
		default:
			if x.b[k] {
				v = 1
			}
		}
		switch dst {
		case f32:
			o.f[k] = float32(v)
		case i32:
			o.i[k] = int32(v) // truncation toward zero, as TensorFlow
		default:
			o.b[k] = v != 0
		}
	}
	return one(o), nil
}

// ---- shapes ----

func shapeOp(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 1); err != nil {
		return nil, err
	}
	o := newI32([]int{len(in[0].shape)})
	for k, d := range in[0].shape {
		o.i[k] = int32(d)
	}
	return one(o), nil
}

func reshape(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	shape, err := in[1].ints()
	if err != nil {
		return nil, err
	}
	total := in[0].size()
	known, infer := 1, -1
	for k, d := range shape {
		if d == -1 {
			if infer >= 0 {
				return nil, errors.New("two -1 in shape")
			}
			infer = k
			continue
		}
		known *= d
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in[0].shape, shape)
		}
		shape[infer] = total / known
	}
	if numElems(shape) != total {
		return nil, fmt.Errorf("cannot reshape %v to %v", in[0].shape, shape)
	}
	return one(in[0].withShape(shape)), nil
}

func expandDims(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	d, err := in[1].scalarInt()
	if err != nil {
		return nil, err
	}
	r := len(in[0].shape)
	if d < 0 {
		d += r + 1
	}
	if d < 0 || d > r {
		return nil, fmt.Errorf("dim %d out of range", d)
	}
	shape := slices.Insert(slices.Clone(in[0].shape), d, 1)
	return one(in[0].withShape(shape)), nil
}

func squeeze(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 1); err != nil {
		return nil, err
	}
	x := in[0]
	dims := n.attrInts("squeeze_dims")
	drop := make([]bool, len(x.shape))
	if len(dims) == 0 {
		for k, d := range x.shape {
			drop[k] = d == 1
		}
	}
	for _, d := range dims {
		a, err := normAxis(d, len(x.shape))
		if err != nil {
			return nil, err
		}
		if x.shape[a] != 1 {
			return nil, fmt.Errorf("cannot squeeze dimension %d of %v", a, x.shape)
		}
		drop[a] = true
	}
	var shape []int
	for k, d := range x.shape {
		if !drop[k] {
			shape = append(shape, d)
		}
	}
	return one(x.withShape(shape)), nil
}

// pack stacks N tensors of one shape along a new axis.
func pack(n *node, in []*tensor) ([]*tensor, error) {
	if len(in) == 0 {
		return nil, errors.New("no inputs")
	}
	s := in[0].shape
	axis := n.attrInt("axis", 0)
	if axis < 0 {
		axis += len(s) + 1
	}
	if axis < 0 || axis > len(s) {
		return nil, fmt.Errorf("axis %d out of range", axis)
	}
	for _, t := range in {
		if !slices.Equal(t.shape, s) || t.dt != in[0].dt {
			return nil, errors.New("inputs differ in shape or dtype")
		}
	}
	shape := slices.Insert(slices.Clone(s), axis, len(in))
	o := newLike(in[0].dt, shape)
	outer := numElems(s[:axis])
	inner := numElems(s[axis:])
	for i := range outer {
		for k, t := range in {
			copyRange(o, (i*len(in)+k)*inner, t, i*inner, inner)
		}
	}
	return one(o), nil
}

func concat(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	vals := in[:len(in)-1]
	ax, err := in[len(in)-1].scalarInt()
	if err != nil {
		return nil, err
	}
	r := len(vals[0].shape)
	axis, err := normAxis(ax, r)
	if err != nil {
		return nil, err
	}
	shape := slices.Clone(vals[0].shape)
	shape[axis] = 0
	for _, t := range vals {
		if len(t.shape) != r || t.dt != vals[0].dt {
			return nil, errors.New("inputs differ in rank or dtype")
		}
		for k := range r {
			if k != axis && t.shape[k] != shape[k] {
				return nil, fmt.Errorf("shapes %v and %v differ off the axis", vals[0].shape, t.shape)
			}
		}
		shape[axis] += t.shape[axis]
	}
	o := newLike(vals[0].dt, shape)
	outer := numElems(shape[:axis])
	inner := numElems(shape[axis+1:])
	off := 0
	for i := range outer {
		for _, t := range vals {
			m := t.shape[axis] * inner
			copyRange(o, off, t, i*m, m)
			off += m
		}
	}
	return one(o), nil
}

// gatherIndex copies the elements of x at the per-dimension start/step/count given into a new
// tensor of shape count (before dropping shrunk dimensions).
func gatherStrided(x *tensor, begin, step, count []int) *tensor {
	o := newLike(x.dt, count)
	if o.size() == 0 {
		return o
	}
	xs := strides(x.shape)
	r := len(count)
	idx := make([]int, r)
	base := 0
	for d := range r {
		base += begin[d] * xs[d]
	}
	src := base
	for k := range o.size() {
		copyElem(o, k, x, src)
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			src += step[d] * xs[d]
			if idx[d] < count[d] {
				break
			}
			src -= step[d] * xs[d] * count[d]
			idx[d] = 0
		}
	}
	return o
}

func stridedSlice(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 4); err != nil {
		return nil, err
	}
	if n.attrInt("ellipsis_mask", 0) != 0 || n.attrInt("new_axis_mask", 0) != 0 {
		return nil, errors.New("ellipsis_mask and new_axis_mask are not supported")
	}
	x := in[0]
	b, err := in[1].ints()
	if err != nil {
		return nil, err
	}
	e, err := in[2].ints()
	if err != nil {
		return nil, err
	}
	s, err := in[3].ints()
	if err != nil {
		return nil, err
	}
	bm, em, sm := n.attrInt("begin_mask", 0), n.attrInt("end_mask", 0), n.attrInt("shrink_axis_mask", 0)
	r := len(x.shape)
	if len(b) > r || len(e) != len(b) || len(s) != len(b) {
		return nil, fmt.Errorf("begin/end/strides %v/%v/%v do not fit shape %v", b, e, s, x.shape)
	}
	begin, step, count := make([]int, r), make([]int, r), make([]int, r)
	var shape []int
	for d := range r {
		dim := x.shape[d]
		if d >= len(b) {
			begin[d], step[d], count[d] = 0, 1, dim
			shape = append(shape, dim)
			continue
		}
		st := s[d]
		if st == 0 {
			return nil, errors.New("stride 0")
		}
		if sm&(1<<d) != 0 {
			v := b[d]
			if v < 0 {
				v += dim
			}
			if v < 0 || v >= dim {
				return nil, fmt.Errorf("index %d out of range for dimension %d", b[d], dim)
			}
			begin[d], step[d], count[d] = v, 1, 1
			continue
		}
		lo, hi := b[d], e[d]
		if lo < 0 {
			lo += dim
		}
		if hi < 0 {
			hi += dim
		}
		if st > 0 {
			if bm&(1<<d) != 0 {
				lo = 0
			}
			if em&(1<<d) != 0 {
				hi = dim
			}
			lo, hi = min(max(lo, 0), dim), min(max(hi, 0), dim)
		} else {
			if bm&(1<<d) != 0 {
				lo = dim - 1
			}
			if em&(1<<d) != 0 {
				hi = -1
			} else if e[d] < 0 && hi < 0 {
				hi = -1
			}
			lo, hi = min(max(lo, -1), dim-1), min(max(hi, -1), dim-1)
		}
		c := 0
		if st > 0 && hi > lo {
			c = (hi - lo + st - 1) / st
		} else if st < 0 && lo > hi {
			c = (lo - hi - st - 1) / -st
		}
		begin[d], step[d], count[d] = lo, st, c
		shape = append(shape, c)
	}
	o := gatherStrided(x, begin, step, count)
	return one(o.withShape(shape)), nil
}

func sliceOp(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 3); err != nil {
		return nil, err
	}
	x := in[0]
	b, err := in[1].ints()
	if err != nil {
		return nil, err
	}
	sz, err := in[2].ints()
	if err != nil {
		return nil, err
	}
	r := len(x.shape)
	if len(b) != r || len(sz) != r {
		return nil, errors.New("begin and size must match the rank")
	}
	step := make([]int, r)
	for d := range r {
		step[d] = 1
		if sz[d] == -1 {
			sz[d] = x.shape[d] - b[d]
		}
		if b[d] < 0 || sz[d] < 0 || b[d]+sz[d] > x.shape[d] {
			return nil, fmt.Errorf("slice %v+%v out of %v", b, sz, x.shape)
		}
	}
	return one(gatherStrided(x, b, step, sz)), nil
}

func transpose(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	x := in[0]
	perm, err := in[1].ints()
	if err != nil {
		return nil, err
	}
	r := len(x.shape)
	if len(perm) != r {
		return nil, errors.New("perm must match the rank")
	}
	xs := strides(x.shape)
	shape, step := make([]int, r), make([]int, r)
	for d, p := range perm {
		shape[d] = x.shape[p]
		step[d] = xs[p]
	}
	// gatherStrided counts steps in units of x's strides per output dimension; express the
	// permutation as a strided walk over a flat view of x.
	flat := x.withShape([]int{x.size()})
	o := newLike(x.dt, shape)
	if o.size() == 0 {
		return one(o), nil
	}
	idx := make([]int, r)
	src := 0
	inner := shape[r-1]
	is := step[r-1]
	for k := 0; k < o.size(); k += inner {
		if x.dt == f32 {
			dst := o.f[k : k+inner]
			s := src
			for j := range dst {
				dst[j] = flat.f[s]
				s += is
			}
		} else {
			for j := range inner {
				copyElem(o, k+j, flat, src+j*is)
			}
		}
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			src += step[d]
			if idx[d] < shape[d] {
				break
			}
			src -= step[d] * shape[d]
			idx[d] = 0
		}
	}
	return one(o), nil
}

func splitV(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 3); err != nil {
		return nil, err
	}
	x := in[0]
	sizes, err := in[1].ints()
	if err != nil {
		return nil, err
	}
	ax, err := in[2].scalarInt()
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(ax, len(x.shape))
	if err != nil {
		return nil, err
	}
	dim := x.shape[axis]
	sum, infer := 0, -1
	for k, s := range sizes {
		if s == -1 {
			infer = k
			continue
		}
		sum += s
	}
	if infer >= 0 {
		sizes[infer] = dim - sum
		sum = dim
	}
	if sum != dim {
		return nil, fmt.Errorf("sizes %v do not add up to %d", sizes, dim)
	}
	outer := numElems(x.shape[:axis])
	inner := numElems(x.shape[axis+1:])
	outs := make([]*tensor, len(sizes))
	start := 0
	for k, s := range sizes {
		shape := slices.Clone(x.shape)
		shape[axis] = s
		o := newLike(x.dt, shape)
		for i := range outer {
			copyRange(o, i*s*inner, x, (i*dim+start)*inner, s*inner)
		}
		outs[k] = o
		start += s
	}
	return outs, nil
}

// ---- gather and scatter ----

func gatherV2(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 3); err != nil {
		return nil, err
	}
	if n.attrInt("batch_dims", 0) != 0 {
		return nil, errors.New("batch_dims is not supported")
	}
	p, ix := in[0], in[1]
	ax, err := in[2].scalarInt()
	if err != nil {
		return nil, err
	}
	axis, err := normAxis(ax, len(p.shape))
	if err != nil {
		return nil, err
	}
	idx, err := ix.ints()
	if err != nil {
		return nil, err
	}
	shape := append(append(slices.Clone(p.shape[:axis]), ix.shape...), p.shape[axis+1:]...)
	o := newLike(p.dt, shape)
	outer := numElems(p.shape[:axis])
	inner := numElems(p.shape[axis+1:])
	dim := p.shape[axis]
	for i := range outer {
		for k, j := range idx {
			if j < 0 || j >= dim {
				return nil, fmt.Errorf("index %d out of range [0,%d)", j, dim)
			}
			copyRange(o, (i*len(idx)+k)*inner, p, (i*dim+j)*inner, inner)
		}
	}
	return one(o), nil
}

// ndOffsets turns the last dimension of indices ([..., k]) into flat offsets into the first k
// dimensions of shape, in units of the slice below them.
func ndOffsets(indices *tensor, shape []int) (offs []int, k, inner int, err error) {
	idx, err := indices.ints()
	if err != nil {
		return nil, 0, 0, err
	}
	r := len(indices.shape)
	if r == 0 {
		return nil, 0, 0, errors.New("indices must have rank >= 1")
	}
	k = indices.shape[r-1]
	if k > len(shape) {
		return nil, 0, 0, fmt.Errorf("index depth %d exceeds rank %d", k, len(shape))
	}
	inner = numElems(shape[k:])
	m := 0
	if k > 0 {
		m = len(idx) / k
	} else {
		m = numElems(indices.shape[:r-1])
	}
	offs = make([]int, m)
	for i := range m {
		off := 0
		for d := range k {
			v := idx[i*k+d]
			if v < 0 || v >= shape[d] {
				return nil, 0, 0, fmt.Errorf("index %d out of range [0,%d)", v, shape[d])
			}
			off = off*shape[d] + v
		}
		offs[i] = off
	}
	return offs, k, inner, nil
}

func gatherNd(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	p, ix := in[0], in[1]
	offs, k, inner, err := ndOffsets(ix, p.shape)
	if err != nil {
		return nil, err
	}
	shape := append(slices.Clone(ix.shape[:len(ix.shape)-1]), p.shape[k:]...)
	o := newLike(p.dt, shape)
	for i, off := range offs {
		copyRange(o, i*inner, p, off*inner, inner)
	}
	return one(o), nil
}

func scatterNd(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 3); err != nil {
		return nil, err
	}
	ix, up := in[0], in[1]
	shape, err := in[2].ints()
	if err != nil {
		return nil, err
	}
	offs, _, inner, err := ndOffsets(ix, shape)
	if err != nil {
		return nil, err
	}
	if up.size() != len(offs)*inner {
		return nil, fmt.Errorf("updates %v do not fit %d indices into %v", up.shape, len(offs), shape)
	}
	o := newLike(up.dt, shape)
	for i, off := range offs {
		switch up.dt {
		case f32: // duplicates add up, as in TensorFlow
			dst := o.f[off*inner : (off+1)*inner]
			for j, v := range up.f[i*inner : (i+1)*inner] {
				dst[j] += v
			}
		case i32:
			dst := o.i[off*inner : (off+1)*inner]
			for j, v := range up.i[i*inner : (i+1)*inner] {
				dst[j] += v
			}
		default:
			return nil, errors.New("bool updates are not supported")
		}
	}
	return one(o), nil
}

func sparseToDense(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 4); err != nil {
		return nil, err
	}
	ix, vals, def := in[0], in[2], in[3]
	shape, err := in[1].ints()
	if err != nil {
		return nil, err
	}
	if vals.dt != def.dt || def.size() != 1 {
		return nil, errors.New("values and default value must share a dtype; default must be a scalar")
	}
	idx := ix
	switch len(ix.shape) {
	case 0:
		idx = ix.withShape([]int{1, 1})
	case 1:
		idx = ix.withShape([]int{ix.shape[0], 1})
	}
	if idx.shape[1] != len(shape) {
		return nil, fmt.Errorf("indices %v do not fit shape %v", ix.shape, shape)
	}
	offs, _, _, err := ndOffsets(idx, shape)
	if err != nil {
		return nil, err
	}
	o := newLike(vals.dt, shape)
	for k := range o.size() {
		copyElem(o, k, def, 0)
	}
	for i, off := range offs {
		src := 0
		if vals.size() > 1 {
			if i >= vals.size() {
				return nil, errors.New("fewer values than indices")
			}
			src = i
		}
		copyElem(o, off, vals, src)
	}
	return one(o), nil
}

func where(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 1); err != nil {
		return nil, err
	}
	if len(in) > 1 {
		return nil, errors.New("three-argument Where is not supported")
	}
	x := in[0]
	r := len(x.shape)
	var hits []int
	for k := range x.size() {
		var t bool
		switch x.dt {
		case boolean:
			t = x.b[k]
		case f32:
			t = x.f[k] != 0
		default:
			t = x.i[k] != 0
		}
		if t {
			hits = append(hits, k)
		}
	}
	o := newI32([]int{len(hits), r})
	xs := strides(x.shape)
	for i, k := range hits {
		for d := range r {
			o.i[i*r+d] = int32(k / xs[d] % x.shape[d])
		}
	}
	return one(o), nil
}

func rangeOp(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 3); err != nil {
		return nil, err
	}
	start, err := in[0].scalarInt()
	if err != nil {
		return nil, err
	}
	limit, err := in[1].scalarInt()
	if err != nil {
		return nil, err
	}
	delta, err := in[2].scalarInt()
	if err != nil {
		return nil, err
	}
	if delta == 0 {
		return nil, errors.New("delta 0")
	}
	var vals []int32
	for v := start; (delta > 0 && v < limit) || (delta < 0 && v > limit); v += delta {
		vals = append(vals, int32(v))
	}
	return one(&tensor{dt: i32, shape: []int{len(vals)}, i: vals}), nil
}

// ---- reductions ----

type redKind uint8

const (
	redSum redKind = iota
	redMean
	redMax
	redProd
)

func reduce(kind redKind) opFunc {
	return func(n *node, in []*tensor) ([]*tensor, error) {
		if err := nargs(in, 2); err != nil {
			return nil, err
		}
		x := in[0]
		if x.dt == boolean {
			return nil, errors.New("bool reductions are not supported")
		}
		axes, err := in[1].ints()
		if err != nil {
			return nil, err
		}
		r := len(x.shape)
		red := make([]bool, r)
		for _, a := range axes {
			d, err := normAxis(a, r)
			if err != nil {
				return nil, err
			}
			red[d] = true
		}
		keep := n.attrBool("keep_dims")
		var shape, kept []int
		for d, s := range x.shape {
			switch {
			case !red[d]:
				shape = append(shape, s)
				kept = append(kept, s)
			case keep:
				kept = append(kept, 1)
			}
		}
		outN := numElems(shape)
		acc := make([]float64, outN)
		init := 0.0
		switch kind {
		case redMax:
			init = math.Inf(-1)
		case redProd:
			init = 1
		}
		for k := range acc {
			acc[k] = init
		}
		// Output stride per input dimension (0 for reduced ones).
		os := make([]int, r)
		st := 1
		for d := r - 1; d >= 0; d-- {
			if !red[d] {
				os[d] = st
				st *= x.shape[d]
			}
		}
		cnt := 1
		for d, s := range x.shape {
			if red[d] {
				cnt *= s
			}
		}
		get := func(k int) float64 {
			if x.dt == f32 {
				return float64(x.f[k])
			}
			return float64(x.i[k])
		}
		if r > 0 && red[r-1] && x.size() > 0 {
			// Innermost dimension reduced: walk contiguous rows.
			m := x.shape[r-1]
			idx := make([]int, r)
			o := 0
			for k := 0; k < x.size(); k += m {
				a := acc[o]
				if x.dt == f32 && (kind == redSum || kind == redMean) {
					// The layer norms' case: a float32 row sum, in float64.
					for _, v := range x.f[k : k+m] {
						a += float64(v)
					}
				} else {
					for j := k; j < k+m; j++ {
						v := get(j)
						switch kind {
						case redSum, redMean:
							a += v
						case redMax:
							a = max(a, v)
						case redProd:
							a *= v
						}
					}
				}
				acc[o] = a
				for d := r - 2; d >= 0; d-- {
					idx[d]++
					o += os[d]
					if idx[d] < x.shape[d] {
						break
					}
					o -= os[d] * x.shape[d]
					idx[d] = 0
				}
			}
		} else if x.size() > 0 {
			idx := make([]int, r)
			o := 0
			for k := range x.size() {
				v := get(k)
				switch kind {
				case redSum, redMean:
					acc[o] += v
				case redMax:
					acc[o] = max(acc[o], v)
				case redProd:
					acc[o] *= v
				}
				for d := r - 1; d >= 0; d-- {
					idx[d]++
					o += os[d]
					if idx[d] < x.shape[d] {
						break
					}
					o -= os[d] * x.shape[d]
					idx[d] = 0
				}
			}
		}
		if kind == redMean && cnt > 0 {
			for k := range acc {
				acc[k] /= float64(cnt)
			}
		}
		o := newLike(x.dt, kept)
		for k, v := range acc {
			if x.dt == f32 {
				o.f[k] = float32(v)
			} else {
				if math.IsInf(v, -1) {
					v = math.MinInt32
				}
				o.i[k] = int32(v)
			}
		}
		return one(o), nil
	}
}

func softmax(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 1); err != nil {
		return nil, err
	}
	x := in[0]
	if x.dt != f32 || len(x.shape) == 0 {
		return nil, errors.New("want a float32 tensor of rank >= 1")
	}
	m := x.shape[len(x.shape)-1]
	o := x // each element is read before it is written
	if !n.inplace {
		o = newF32(x.shape)
	}
	if m == 0 {
		return one(o), nil
	}
	for k := 0; k < len(x.f); k += m {
		row, dst := x.f[k:k+m], o.f[k:k+m]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var sum float32
		for j, v := range row {
			e := float32(math.Exp(float64(v - mx)))
			dst[j] = e
			sum += e
		}
		for j := range dst {
			dst[j] /= sum
		}
	}
	return one(o), nil
}

// ---- linear algebra ----

func biasAdd(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	if f := n.attrString("data_format"); f != "" && f != "NHWC" {
		return nil, fmt.Errorf("data_format %q is not supported", f)
	}
	x, b := in[0], in[1]
	if x.dt != f32 || b.dt != f32 || len(b.shape) != 1 || len(x.shape) == 0 || x.shape[len(x.shape)-1] != b.shape[0] {
		return nil, fmt.Errorf("bias %v does not fit %v", b.shape, x.shape)
	}
	o := x
	if !n.inplace {
		o = newF32(x.shape)
	}
	m := b.shape[0]
	for k := 0; k < len(x.f); k += m {
		dst, src := o.f[k:k+m], x.f[k:k+m]
		for j, v := range b.f {
			dst[j] = src[j] + v
		}
	}
	return one(o), nil
}

func matMul(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	a, b := in[0], in[1]
	if a.dt != f32 || b.dt != f32 || len(a.shape) != 2 || len(b.shape) != 2 {
		return nil, fmt.Errorf("want float32 matrices, got %v and %v", a.shape, b.shape)
	}
	ta, tb := n.attrBool("transpose_a"), n.attrBool("transpose_b")
	m, k := a.shape[0], a.shape[1]
	if ta {
		m, k = k, m
	}
	k2, nn := b.shape[0], b.shape[1]
	if tb {
		k2, nn = nn, k2
	}
	if k != k2 {
		return nil, fmt.Errorf("inner dimensions differ: %v, %v", a.shape, b.shape)
	}
	o := newF32([]int{m, nn})
	if k == 0 {
		return one(o), nil
	}
	if n.packed != nil {
		gemmPacked(ta, m, a.f, a.shape[1], n.packed, o.f, nil)
	} else {
		gemm(ta, tb, m, nn, k, a.f, a.shape[1], b.f, b.shape[1], o.f)
	}
	return one(o), nil
}

func batchMatMul(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	a, b := in[0], in[1]
	ra, rb := len(a.shape), len(b.shape)
	if a.dt != f32 || b.dt != f32 || ra < 2 || ra != rb || !slices.Equal(a.shape[:ra-2], b.shape[:rb-2]) {
		return nil, fmt.Errorf("unsupported shapes %v and %v", a.shape, b.shape)
	}
	ta, tb := n.attrBool("adj_x"), n.attrBool("adj_y")
	m, k := a.shape[ra-2], a.shape[ra-1]
	if ta {
		m, k = k, m
	}
	k2, nn := b.shape[rb-2], b.shape[rb-1]
	if tb {
		k2, nn = nn, k2
	}
	if k != k2 {
		return nil, fmt.Errorf("inner dimensions differ: %v, %v", a.shape, b.shape)
	}
	batch := numElems(a.shape[:ra-2])
	shape := append(slices.Clone(a.shape[:ra-2]), m, nn)
	o := newF32(shape)
	if k == 0 {
		return one(o), nil
	}
	sa, sb, so := a.shape[ra-2]*a.shape[ra-1], b.shape[rb-2]*b.shape[rb-1], m*nn
	for i := range batch {
		gemm(ta, tb, m, nn, k, a.f[i*sa:(i+1)*sa], a.shape[ra-1], b.f[i*sb:(i+1)*sb], b.shape[rb-1], o.f[i*so:(i+1)*so])
	}
	return one(o), nil
}

// conv2D supports what the graph uses: 1×1 filters with unit strides and dilations over NHWC,
// which is a matrix product over the channel dimension.
func conv2D(n *node, in []*tensor) ([]*tensor, error) {
	if err := nargs(in, 2); err != nil {
		return nil, err
	}
	x, f := in[0], in[1]
	if df := n.attrString("data_format"); df != "" && df != "NHWC" {
		return nil, fmt.Errorf("data_format %q is not supported", df)
	}
	for _, key := range []string{"strides", "dilations"} {
		for _, v := range n.attrInts(key) {
			if v != 1 {
				return nil, fmt.Errorf("%s %v are not supported", key, n.attrInts(key))
			}
		}
	}
	if x.dt != f32 || len(x.shape) != 4 || len(f.shape) != 4 || f.shape[0] != 1 || f.shape[1] != 1 || f.shape[2] != x.shape[3] {
		return nil, fmt.Errorf("only 1x1 filters are supported: input %v, filter %v", x.shape, f.shape)
	}
	rows := x.shape[0] * x.shape[1] * x.shape[2]
	c, oc := f.shape[2], f.shape[3]
	o := newF32([]int{x.shape[0], x.shape[1], x.shape[2], oc})
	switch {
	case c == 0:
	case n.packed != nil:
		gemmPacked(false, rows, x.f, c, n.packed, o.f, nil)
	default:
		gemm(false, false, rows, oc, c, x.f, c, f.f, oc, o.f)
	}
	return one(o), nil
}
