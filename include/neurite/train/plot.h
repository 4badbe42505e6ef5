// Small SVG line charts, so a run's curves can be looked at without tools.
//
//   train::LineChart chart{.title = "cnn on fashion-mnist", .x_label = "epoch"};
//   chart.series.push_back({"val top-1", {1, 2, 3}, {0.85, 0.88, 0.90}});
//   train::write_svg(chart, "run/curves.svg");
#pragma once

#include <string>
#include <vector>

namespace neurite::train {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
};

// Horizontal bars, one per label (e.g. per-layer sparsity), values in [0, max].
struct BarChart {
  std::string title, value_label;
  std::vector<std::string> labels;
  std::vector<double> values;
  double max = 1.0;
};

// Throws IoError if the file cannot be written.
void write_svg(const LineChart& chart, const std::string& path);
void write_svg(const BarChart& chart, const std::string& path);
// Several charts side by side in one SVG.
void write_svg(const std::vector<LineChart>& charts, const std::string& path);

}  // namespace neurite::train
