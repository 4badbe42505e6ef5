// Times ONNX Runtime (npm onnxruntime-node 1.17) on a model with random
// inputs, as `neurite bench --json` times ours:
//   node ort_bench.js ORT_PACKAGE_DIR model.onnx BATCH THREADS TIME_S WARMUP_S
// Prints {"items_per_sec", "latency_ms": {"mean", "p50", "p90", "p99"}, "iterations", "batch_size", "threads"}.
// int64 inputs get ids below 100 (token ids); every graph optimisation is on.
'use strict';
const [ortDir, modelPath, batchArg, threadsArg, timeArg, warmupArg] = process.argv.slice(2);
const ort = require(ortDir);
const batch = Number(batchArg), threads = Number(threadsArg);

(async () => {
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  // Input shapes from the model file's metadata are not exposed by the node API: take them from the file with
  // the same protobuf reader ORT uses? Simpler: the caller's models have one input, (batch, ...) with known tail.
  const meta = JSON.parse(process.env.ORT_INPUT_SHAPES);
  const feeds = {};
  session.inputNames.forEach((name, i) => {
    const { shape, type } = meta[i];
    const dims = shape.map((d, k) => (k === 0 ? batch : d));
    const n = dims.reduce((a, b) => a * b, 1);
    if (type === 'int64') {
      const data = new BigInt64Array(n);
      for (let j = 0; j < n; ++j) data[j] = BigInt(Math.floor(Math.random() * 100));
      feeds[name] = new ort.Tensor('int64', data, dims);
    } else {
      const data = new Float32Array(n);
      for (let j = 0; j < n; ++j) data[j] = Math.random() * 2 - 1;
      feeds[name] = new ort.Tensor('float32', data, dims);
    }
  });
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  for (const t0 = now(); now() - t0 < Number(warmupArg) * 1000;) await session.run(feeds);
  const ms = [];
  for (const t0 = now(); ms.length < 3 || now() - t0 < Number(timeArg) * 1000;) {
    const t = now();
    await session.run(feeds);
    ms.push(now() - t);
  }
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  const sorted = [...ms].sort((a, b) => a - b);
  const pct = q => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  console.log(JSON.stringify({
    items_per_sec: batch * 1000 / mean,
    latency_ms: { mean, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) },
    iterations: ms.length, batch_size: batch, threads,
  }));
})().catch(e => { console.error(`ort_bench: ${modelPath}: ${e.message}`); process.exit(1); });
