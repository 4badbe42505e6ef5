// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node) on .npy inputs:
//   node ort_run.js ORT_PACKAGE_DIR model.onnx out.npy in1.npy [in2.npy ...]
// Inputs are bound to the model's inputs in order; the first output is written.
// float32 and int64 arrays, C order, little endian.
'use strict';
const fs = require('fs');
const [ortDir, modelPath, outPath, ...inPaths] = process.argv.slice(2);
const ort = require(ortDir);

function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12);
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const data = buf.subarray(start + headerLen);
  const copy = Buffer.from(data);  // aligned
  if (descr === '<f4') return new ort.Tensor('float32', new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4), shape);
  if (descr === '<i8') return new ort.Tensor('int64', new BigInt64Array(copy.buffer, copy.byteOffset, copy.length / 8), shape);
  throw new Error(`${path}: dtype ${descr} is not float32 or int64`);
}

function writeNpy(path, tensor) {
  const descr = tensor.type === 'float32' ? '<f4' : '<i8';
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

(async () => {
  // Basic optimisations: an oracle need not fuse, and ONNX Runtime 1.17's QDQ
  // fusions (extended level) refuse PyTorch's QAT exports, whose per-tensor
  // scales are 1-D of one value ("Scale and Zero-point must be a scalar").
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, graphOptimizationLevel: 'basic' });
  const feeds = {};
  session.inputNames.forEach((name, i) => { feeds[name] = readNpy(inPaths[i]); });
  const results = await session.run(feeds);
  writeNpy(outPath, results[session.outputNames[0]]);
})().catch(e => { console.error(`ort_run: ${e.message}`); process.exit(1); });
