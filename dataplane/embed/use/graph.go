package use

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The TF.js graph-model format: model.json holds a GraphDef (modelTopology.node) and a
// weightsManifest naming each constant's shape and dtype, in the order the constants are laid out
// back to back across the binary shards.

type modelJSON struct {
	ModelTopology struct {
		Node []nodeJSON `json:"node"`
	} `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string     `json:"paths"`
		Weights []weightJSON `json:"weights"`
	} `json:"weightsManifest"`
}

type nodeJSON struct {
	Name  string               `json:"name"`
	Op    string               `json:"op"`
	Input []string             `json:"input"`
	Attr  map[string]attrValue `json:"attr"`
}

type weightJSON struct {
	Name         string `json:"name"`
	Shape        []int  `json:"shape"`
	Dtype        string `json:"dtype"`
	Quantization *struct {
		Dtype string  `json:"dtype"`
		Min   float64 `json:"min"`
		Scale float64 `json:"scale"`
	} `json:"quantization"`
}

// attrValue is one AttrValue of a node in its JSON form. Integers are strings (int64 in proto3
// JSON) and may be numbers in hand-written files; strings are base64 or, in some converters'
// output, arrays of bytes.
type attrValue struct {
	I    json.RawMessage `json:"i"`
	F    *float64        `json:"f"`
	B    *bool           `json:"b"`
	S    json.RawMessage `json:"s"`
	Type json.RawMessage `json:"type"`
	List *struct {
		I []json.RawMessage `json:"i"`
	} `json:"list"`
}

func rawInt(r json.RawMessage) (int, bool) {
	if len(r) == 0 {
		return 0, false
	}
	s := strings.Trim(string(r), `"`)
	v, err := strconv.Atoi(s)
	return v, err == nil
}

// node is one operation of the compiled graph; its inputs point at the outputs of earlier nodes.
type node struct {
	name   string
	op     string
	inputs []ref
	attr   map[string]attrValue
	strs   map[string]string // the string attributes, decoded
	value  *tensor           // for Const
	// inplace means the op may write its result into its first input: nothing else reads
	// that buffer (see markInPlace).
	inplace bool
	// packed is the constant right-hand matrix of a MatMul or Conv2D, packed for the kernel
	// once at compile time (nil without the kernel or for a computed operand).
	packed *packedB
}

type ref struct {
	node, out int
}

func (n *node) attrInt(key string, def int) int {
	if a, ok := n.attr[key]; ok {
		if v, ok := rawInt(a.I); ok {
			return v
		}
	}
	return def
}

func (n *node) attrBool(key string) bool {
	if a, ok := n.attr[key]; ok && a.B != nil {
		return *a.B
	}
	return false
}

func (n *node) attrInts(key string) []int {
	a, ok := n.attr[key]
	if !ok || a.List == nil {
		return nil
	}
	out := make([]int, 0, len(a.List.I))
	for _, r := range a.List.I {
		if v, ok := rawInt(r); ok {
			out = append(out, v)
		}
	}
	return out
}

// attrString returns a string attribute, decoded at compile time.
func (n *node) attrString(key string) string { return n.strs[key] }

// decodeString decodes a string attribute from base64 or from an array of bytes.
func decodeString(a attrValue) string {
	if len(a.S) == 0 {
		return ""
	}
	var bs []byte // base64 in proto3 JSON
	if err := json.Unmarshal(a.S, &bs); err == nil {
		return string(bs)
	}
	var ints []int
	if err := json.Unmarshal(a.S, &ints); err == nil {
		b := make([]byte, len(ints))
		for k, v := range ints {
			b[k] = byte(v)
		}
		return string(b)
	}
	return ""
}

// dstType maps a TensorFlow DataType (number or name) to ours.
func (n *node) attrType(key string) (dtype, error) {
	a, ok := n.attr[key]
	if !ok {
		return 0, fmt.Errorf("node %s: missing attribute %s", n.name, key)
	}
	s := strings.Trim(string(a.Type), `"`)
	switch s {
	case "1", "DT_FLOAT":
		return f32, nil
	case "3", "9", "DT_INT32", "DT_INT64":
		return i32, nil
	case "10", "DT_BOOL":
		return boolean, nil
	}
	return 0, fmt.Errorf("node %s: unsupported type %s", n.name, s)
}

// graph is the compiled model: nodes in an order where every input comes first, and the index of
// the output and of the two placeholders.
type graph struct {
	nodes   []*node
	output  int
	indices int // Placeholder "indices": int32 [n,2] (batch row, position)
	values  int // Placeholder "values": int32 [n] token ids
	// lastUse[k] is the last step that reads node k's outputs, so a run can drop them after it.
	lastUse []int
}

// loadGraph reads model.json and its weight shards from dir.
func loadGraph(dir string) (*graph, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, err
	}
	var m modelJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("model.json: %w", err)
	}
	consts := map[string]*tensor{}
	for _, group := range m.WeightsManifest {
		var data []byte
		for _, p := range group.Paths {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil {
				return nil, fmt.Errorf("weight shard: %w", err)
			}
			data = append(data, b...)
		}
		off := 0
		for _, w := range group.Weights {
			t, n, err := decodeWeight(w, data[off:])
			if err != nil {
				return nil, fmt.Errorf("weight %s: %w", w.Name, err)
			}
			consts[w.Name] = t
			off += n
		}
		if off != len(data) {
			return nil, fmt.Errorf("weight shards %v: %d bytes, manifest describes %d", group.Paths, len(data), off)
		}
	}
	return compile(m.ModelTopology.Node, consts)
}

// decodeWeight decodes one weight from the start of data and returns it with its byte length.
func decodeWeight(w weightJSON, data []byte) (*tensor, int, error) {
	shape := append([]int{}, w.Shape...)
	n := numElems(shape)
	if q := w.Quantization; q != nil {
		// Affine quantisation: value = byte*scale + min (uint8/uint16); float16 is IEEE half.
		t := newF32(shape)
		switch q.Dtype {
		case "uint8":
			if len(data) < n {
				return nil, 0, errors.New("short data")
			}
			for k := range n {
				t.f[k] = float32(float64(data[k])*q.Scale + q.Min)
			}
			if w.Dtype == "int32" {
				return toInt(t), n, nil
			}
			return t, n, nil
		case "uint16":
			if len(data) < 2*n {
				return nil, 0, errors.New("short data")
			}
			for k := range n {
				t.f[k] = float32(float64(binary.LittleEndian.Uint16(data[2*k:]))*q.Scale + q.Min)
			}
			if w.Dtype == "int32" {
				return toInt(t), 2 * n, nil
			}
			return t, 2 * n, nil
		case "float16":
			if len(data) < 2*n {
				return nil, 0, errors.New("short data")
			}
			for k := range n {
				t.f[k] = halfToFloat(binary.LittleEndian.Uint16(data[2*k:]))
			}
			return t, 2 * n, nil
		}
		return nil, 0, fmt.Errorf("unsupported quantization %q", q.Dtype)
	}
	switch w.Dtype {
	case "float32":
		if len(data) < 4*n {
			return nil, 0, errors.New("short data")
		}
		t := newF32(shape)
		for k := range n {
			t.f[k] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*k:]))
		}
		return t, 4 * n, nil
	case "int32":
		if len(data) < 4*n {
			return nil, 0, errors.New("short data")
		}
		t := newI32(shape)
		for k := range n {
			t.i[k] = int32(binary.LittleEndian.Uint32(data[4*k:]))
		}
		return t, 4 * n, nil
	case "bool":
		if len(data) < n {
			return nil, 0, errors.New("short data")
		}
		t := newBool(shape)
		for k := range n {
			t.b[k] = data[k] != 0
		}
		return t, n, nil
	}
	return nil, 0, fmt.Errorf("unsupported dtype %q", w.Dtype)
}

func toInt(t *tensor) *tensor {
	o := newI32(t.shape)
	for k, v := range t.f {
		o.i[k] = int32(math.Round(float64(v)))
	}
	return o
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		return float32(math.Ldexp(float64(frac), -24)) * (1 - 2*float32(sign>>31))
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// compile orders the nodes so that each comes after its inputs, keeping only what the output
// needs, and resolves input names to references.
func compile(nodes []nodeJSON, consts map[string]*tensor) (*graph, error) {
	byName := make(map[string]int, len(nodes))
	for k, n := range nodes {
		byName[n.Name] = k
	}
	consumed := map[string]bool{}
	for _, n := range nodes {
		for _, in := range n.Input {
			name, _ := splitInput(in)
			consumed[name] = true
		}
	}
	out := -1
	for k, n := range nodes {
		if !consumed[n.Name] && n.Op != "Const" && n.Op != "Placeholder" {
			if out >= 0 {
				return nil, fmt.Errorf("graph has two outputs: %s and %s", nodes[out].Name, n.Name)
			}
			out = k
		}
	}
	if out < 0 {
		return nil, errors.New("graph has no output")
	}

	g := &graph{indices: -1, values: -1}
	pos := make(map[int]int, len(nodes)) // model.json index -> position in g.nodes
	state := make([]uint8, len(nodes))   // 0 new, 1 visiting, 2 done
	var visit func(k int) error
	visit = func(k int) error {
		switch state[k] {
		case 1:
			return fmt.Errorf("graph has a cycle through %s", nodes[k].Name)
		case 2:
			return nil
		}
		state[k] = 1
		nj := nodes[k]
		n := &node{name: nj.Name, op: nj.Op, attr: nj.Attr, strs: map[string]string{}}
		for key, a := range nj.Attr {
			if len(a.S) > 0 {
				n.strs[key] = decodeString(a)
			}
		}
		for _, in := range nj.Input {
			if strings.HasPrefix(in, "^") {
				continue // control dependency: no data
			}
			name, idx := splitInput(in)
			src, ok := byName[name]
			if !ok {
				return fmt.Errorf("node %s: unknown input %s", nj.Name, in)
			}
			if err := visit(src); err != nil {
				return err
			}
			n.inputs = append(n.inputs, ref{node: pos[src], out: idx})
		}
		switch nj.Op {
		case "Const":
			c, ok := consts[nj.Name]
			if !ok {
				return fmt.Errorf("constant %s is not in the weights manifest", nj.Name)
			}
			n.value = c
		case "Placeholder":
			switch nj.Name {
			case "indices":
				g.indices = len(g.nodes)
			case "values":
				g.values = len(g.nodes)
			default:
				return fmt.Errorf("unexpected input %s", nj.Name)
			}
		default:
			if _, ok := ops[nj.Op]; !ok {
				return fmt.Errorf("node %s: unsupported op %s", nj.Name, nj.Op)
			}
			n.packed = prepack(n, g.nodes)
		}
		state[k] = 2
		pos[k] = len(g.nodes)
		g.nodes = append(g.nodes, n)
		return nil
	}
	if err := visit(out); err != nil {
		return nil, err
	}
	if g.indices < 0 || g.values < 0 {
		return nil, errors.New("graph lacks the indices and values inputs")
	}
	g.output = pos[out]
	g.markInPlace()
	g.lastUse = make([]int, len(g.nodes))
	for k, n := range g.nodes {
		for _, in := range n.inputs {
			g.lastUse[in.node] = k
		}
	}
	g.lastUse[g.output] = len(g.nodes)
	return g, nil
}

// viewOps may return their input's buffer under another shape (or as is).
var viewOps = map[string]bool{"Reshape": true, "ExpandDims": true, "Squeeze": true, "Cast": true}

// markInPlace sets inplace on each node whose first input's buffer is read by that node alone:
// the input is produced by an op that allocates it (not a constant, not a placeholder), is used
// once in the whole graph, and, through view ops, the same holds for the buffer they share. The
// element-wise ops then write over their input instead of allocating, which saves a third of
// the forward pass's allocations.
func (g *graph) markInPlace() {
	uses := make([]int, len(g.nodes))
	for _, n := range g.nodes {
		for _, in := range n.inputs {
			uses[in.node]++
		}
	}
	var exclusive func(k int) bool
	exclusive = func(k int) bool {
		n := g.nodes[k]
		if n.value != nil || k == g.indices || k == g.values || k == g.output || uses[k] != 1 {
			return false
		}
		if viewOps[n.op] {
			return len(n.inputs) > 0 && exclusive(n.inputs[0].node)
		}
		return true
	}
	for _, n := range g.nodes {
		if len(n.inputs) == 0 || viewOps[n.op] {
			continue
		}
		n.inplace = exclusive(n.inputs[0].node)
	}
}

// prepack packs the constant weight matrix of a MatMul or a 1×1 Conv2D node.
func prepack(n *node, nodes []*node) *packedB {
	if !hasKernel || len(n.inputs) != 2 || (n.op != "MatMul" && n.op != "Conv2D") {
		return nil
	}
	w := nodes[n.inputs[1].node].value
	if w == nil || w.dt != f32 {
		return nil
	}
	switch {
	case n.op == "MatMul" && len(w.shape) == 2:
		k, cols := w.shape[0], w.shape[1]
		if n.attrBool("transpose_b") {
			k, cols = cols, k
		}
		return packB(&packedB{}, n.attrBool("transpose_b"), cols, k, w.f, w.shape[1])
	case n.op == "Conv2D" && len(w.shape) == 4 && w.shape[0] == 1 && w.shape[1] == 1:
		return packB(&packedB{}, false, w.shape[3], w.shape[2], w.f, w.shape[3])
	}
	return nil
}

func splitInput(in string) (string, int) {
	if k := strings.LastIndexByte(in, ':'); k >= 0 {
		if v, err := strconv.Atoi(in[k+1:]); err == nil {
			return in[:k], v
		}
	}
	return in, 0
}

// opList returns each op type the compiled graph runs with its count (for tests and docs).
func (g *graph) opList() map[string]int {
	m := map[string]int{}
	for _, n := range g.nodes {
		m[n.op]++
	}
	return m
}

// run executes the graph on a sparse batch and returns the output tensor. Const outputs are
// shared, never written: every op allocates its result (or reshapes without writing).
func (g *graph) run(indices, values *tensor) (*tensor, error) {
	outs := make([][]*tensor, len(g.nodes))
	in := make([]*tensor, 0, 4)
	for k, n := range g.nodes {
		switch {
		case n.value != nil:
			outs[k] = []*tensor{n.value}
		case k == g.indices:
			outs[k] = []*tensor{indices}
		case k == g.values:
			outs[k] = []*tensor{values}
		default:
			in = in[:0]
			for _, r := range n.inputs {
				o := outs[r.node]
				if r.out >= len(o) {
					return nil, fmt.Errorf("node %s: input %d has no output %d", n.name, r.node, r.out)
				}
				in = append(in, o[r.out])
			}
			res, err := ops[n.op](n, in)
			if err != nil {
				return nil, fmt.Errorf("node %s (%s): %w", n.name, n.op, err)
			}
			outs[k] = res
		}
		for _, r := range n.inputs {
			if g.lastUse[r.node] == k {
				outs[r.node] = nil
			}
		}
	}
	return outs[g.output][0], nil
}
