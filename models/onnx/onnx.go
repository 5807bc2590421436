// Package onnx writes ONNX models (the protobuf schema of onnx.proto) without
// generated code: a small builder for graphs, nodes, typed initializers and
// value infos, serialised with protowire. It covers what Tandem's exporters
// need (dense float/int8/int64 tensors, dynamic dimensions, standard-domain
// operators); it does not read ONNX files.
//
// Contract: a Graph is built by one goroutine; Marshal is deterministic (the
// same graph gives the same bytes), so model files hash reproducibly.
package onnx

import (
	"encoding/binary"
	"math"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is an ONNX TensorProto.DataType.
type DataType int32

// Tensor element types.
const (
	Float DataType = 1
	Uint8 DataType = 2
	Int8  DataType = 3
	Int32 DataType = 6
	Int64 DataType = 7
	Bool  DataType = 9
)

// Defaults for exported models.
const (
	IRVersion = 8  // ONNX IR version 8 (ONNX 1.10+)
	Opset     = 17 // default-domain operator set
)

// Tensor is a dense initializer.
type Tensor struct {
	Name string
	Type DataType
	Dims []int64
	Raw  []byte // little-endian element data
}

// FloatTensor returns a float32 tensor.
func FloatTensor(name string, dims []int64, data []float32) Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, Type: Float, Dims: dims, Raw: raw}
}

// Int8Tensor returns an int8 tensor.
func Int8Tensor(name string, dims []int64, data []int8) Tensor {
	raw := make([]byte, len(data))
	for i, v := range data {
		raw[i] = byte(v)
	}
	return Tensor{Name: name, Type: Int8, Dims: dims, Raw: raw}
}

// Int32Tensor returns an int32 tensor.
func Int32Tensor(name string, dims []int64, data []int32) Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return Tensor{Name: name, Type: Int32, Dims: dims, Raw: raw}
}

// Int64Tensor returns an int64 tensor.
func Int64Tensor(name string, dims []int64, data []int64) Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}

// Dim is a tensor dimension: a fixed size (Value > 0) or a named symbolic
// size (Param, e.g. "batch").
type Dim struct {
	Value int64
	Param string
}

// D returns a fixed dimension; P a symbolic one.
func D(v int64) Dim     { return Dim{Value: v} }
func P(name string) Dim { return Dim{Param: name} }

// ValueInfo names a graph input or output with its type and shape.
type ValueInfo struct {
	Name  string
	Type  DataType
	Shape []Dim
}

// Attr is a node attribute. Use the constructors.
type Attr struct {
	name   string
	kind   int32 // AttributeProto.AttributeType
	f      float32
	i      int64
	s      []byte
	t      *Tensor
	ints   []int64
	floats []float32
}

// AttrInt, AttrFloat, AttrString, AttrInts, AttrFloats and AttrTensor make attributes.
func AttrInt(name string, v int64) Attr         { return Attr{name: name, kind: 2, i: v} }
func AttrFloat(name string, v float32) Attr     { return Attr{name: name, kind: 1, f: v} }
func AttrString(name, v string) Attr            { return Attr{name: name, kind: 3, s: []byte(v)} }
func AttrInts(name string, v ...int64) Attr     { return Attr{name: name, kind: 7, ints: v} }
func AttrFloats(name string, v ...float32) Attr { return Attr{name: name, kind: 6, floats: v} }
func AttrTensor(name string, t Tensor) Attr     { return Attr{name: name, kind: 4, t: &t} }

// Node is one operator application.
type Node struct {
	Op      string
	Name    string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Graph is a computation graph under construction.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Input declares a graph input.
func (g *Graph) Input(name string, t DataType, shape ...Dim) {
	g.Inputs = append(g.Inputs, ValueInfo{Name: name, Type: t, Shape: shape})
}

// Output declares a graph output.
func (g *Graph) Output(name string, t DataType, shape ...Dim) {
	g.Outputs = append(g.Outputs, ValueInfo{Name: name, Type: t, Shape: shape})
}

// Init adds an initializer (a constant tensor).
func (g *Graph) Init(t Tensor) { g.Initializers = append(g.Initializers, t) }

// Op appends a node and returns its first output name, so graphs read as
// expressions: y := g.Op("Relu", []string{x}, "h1").
func (g *Graph) Op(op string, inputs []string, output string, attrs ...Attr) string {
	g.Nodes = append(g.Nodes, Node{Op: op, Name: output + "_" + op, Inputs: inputs, Outputs: []string{output}, Attrs: attrs})
	return output
}

// Model is a graph with its metadata.
type Model struct {
	Graph    Graph
	Producer string
	Version  string
	Doc      string
	Metadata map[string]string // written in key order
}

// Marshal serialises the model as an ONNX ModelProto.
func (m *Model) Marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType) // ir_version
	b = protowire.AppendVarint(b, IRVersion)
	b = appendString(b, 2, m.Producer)
	b = appendString(b, 3, m.Version)
	b = appendString(b, 6, m.Doc)
	b = appendMessage(b, 7, marshalGraph(&m.Graph))
	var opset []byte
	opset = appendString(opset, 1, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, Opset)
	b = appendMessage(b, 8, opset)
	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var e []byte
		e = appendString(e, 1, k)
		e = appendString(e, 2, m.Metadata[k])
		b = appendMessage(b, 14, e)
	}
	return b
}

func marshalGraph(g *Graph) []byte {
	var b []byte
	for i := range g.Nodes {
		b = appendMessage(b, 1, marshalNode(&g.Nodes[i]))
	}
	b = appendString(b, 2, g.Name)
	for i := range g.Initializers {
		b = appendMessage(b, 5, marshalTensor(&g.Initializers[i]))
	}
	for i := range g.Inputs {
		b = appendMessage(b, 11, marshalValueInfo(&g.Inputs[i]))
	}
	for i := range g.Outputs {
		b = appendMessage(b, 12, marshalValueInfo(&g.Outputs[i]))
	}
	return b
}

func marshalNode(n *Node) []byte {
	var b []byte
	for _, in := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, in)
	}
	for _, out := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, out)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.Op)
	for i := range n.Attrs {
		b = appendMessage(b, 5, marshalAttr(&n.Attrs[i]))
	}
	return b
}

func marshalAttr(a *Attr) []byte {
	var b []byte
	b = appendString(b, 1, a.name)
	switch a.kind {
	case 1:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case 2:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.i))
	case 3:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.s)
	case 4:
		b = appendMessage(b, 5, marshalTensor(a.t))
	case 6:
		var p []byte
		for _, f := range a.floats {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendMessage(b, 7, p)
	case 7:
		var p []byte
		for _, v := range a.ints {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = appendMessage(b, 8, p)
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(a.kind))
	return b
}

func marshalTensor(t *Tensor) []byte {
	var b []byte
	if len(t.Dims) > 0 {
		var p []byte
		for _, d := range t.Dims {
			p = protowire.AppendVarint(p, uint64(d))
		}
		b = appendMessage(b, 1, p)
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.Type))
	b = appendString(b, 8, t.Name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, t.Raw)
	return b
}

func marshalValueInfo(v *ValueInfo) []byte {
	var shape []byte
	for _, d := range v.Shape {
		var dim []byte
		if d.Param != "" {
			dim = appendString(dim, 2, d.Param)
		} else {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.Value))
		}
		shape = appendMessage(shape, 1, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(v.Type))
	tt = appendMessage(tt, 2, shape)
	var typ []byte
	typ = appendMessage(typ, 1, tt)
	var b []byte
	b = appendString(b, 1, v.Name)
	b = appendMessage(b, 2, typ)
	return b
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, field protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}
