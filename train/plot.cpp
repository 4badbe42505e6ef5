#include "neurite/train/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <limits>

#include "neurite/error.h"
#include "neurite/files.h"

namespace neurite::train {

namespace {

// A chart's box; the legend sits below the x axis, clear of the lines.
constexpr double kWidth = 480, kHeight = 340, kLeft = 64, kRight = 20, kTop = 36, kBottom = 72;
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// Ticks at 1, 2 or 5 times a power of ten, about five of them.
double tick_step(double span) {
  const double raw = span / 5, power = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

// "20000" rather than "2e+04"; "0.05" as it is.
std::string tick_text(double t) {
  const bool whole = std::abs(t - std::round(t)) < 1e-9 * std::max(1.0, std::abs(t));
  return whole && std::abs(t) < 1e9 ? fmt::format("{:.0f}", std::round(t)) : fmt::format("{:.4g}", t);
}

std::string chart_svg(const LineChart& chart, double offset_x, double offset_y) {
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : chart.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12) x1 = x0 + 1;
  if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return offset_x + kLeft + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return offset_y + kTop + (1 - (y - y0) / (y1 - y0)) * plot_h; };
  std::string svg = fmt::format(
      "<text x='{:.1f}' y='{:.1f}' font-size='14' text-anchor='middle' font-weight='bold'>{}</text>\n"
      "<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='none' stroke='#888'/>\n",
      offset_x + kWidth / 2, offset_y + 20, escape(chart.title), offset_x + kLeft, offset_y + kTop, plot_w, plot_h);
  const double ys = tick_step(y1 - y0);
  for (double t = std::ceil(y0 / ys) * ys; t <= y1; t += ys)
    svg += fmt::format(
        "<line x1='{0:.1f}' x2='{1:.1f}' y1='{2:.1f}' y2='{2:.1f}' stroke='#eee'/>"
        "<text x='{3:.1f}' y='{4:.1f}' font-size='11' text-anchor='end'>{5}</text>\n",
        offset_x + kLeft, offset_x + kLeft + plot_w, py(t), offset_x + kLeft - 4, py(t) + 4,
        tick_text(std::abs(t) < 1e-9 * ys ? 0.0 : t));  // no "-0" from rounding
  const double xs = std::max(tick_step(x1 - x0), x1 - x0 < 10 ? 1.0 : 0.0);
  for (double t = std::ceil(x0 / xs) * xs; t <= x1 + 1e-9; t += xs)
    svg += fmt::format("<line x1='{0:.1f}' x2='{0:.1f}' y1='{1:.1f}' y2='{2:.1f}' stroke='#888'/>"
                       "<text x='{0:.1f}' y='{3:.1f}' font-size='11' text-anchor='middle'>{4}</text>\n",
                       px(t), offset_y + kTop + plot_h, offset_y + kTop + plot_h + 4, offset_y + kTop + plot_h + 16,
                       tick_text(t));
  svg += fmt::format("<text x='{:.1f}' y='{:.1f}' font-size='12' text-anchor='middle'>{}</text>\n",
                     offset_x + kLeft + plot_w / 2, offset_y + kTop + plot_h + 32, escape(chart.x_label));
  svg += fmt::format(
      "<text x='{0:.1f}' y='{1:.1f}' font-size='12' text-anchor='middle' transform='rotate(-90 {0:.1f} {1:.1f})'>"
      "{2}</text>\n",
      offset_x + 16, offset_y + kTop + plot_h / 2, escape(chart.y_label));
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& s = chart.series[k];
    const char* colour = kColours[k % std::size(kColours)];
    std::string points;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
    svg += fmt::format("<polyline fill='none' stroke='{}' stroke-width='2' points='{}'/>\n", colour, points);
    // The legend: one row below the axis label, entries side by side.
    const double lx = offset_x + kLeft + 130.0 * static_cast<double>(k), ly = offset_y + kHeight - 18;
    svg += fmt::format(
        "<rect x='{:.1f}' y='{:.1f}' width='10' height='10' fill='{}'/><text x='{:.1f}' y='{:.1f}' "
        "font-size='11'>{}</text>\n",
        lx, ly - 9, colour, lx + 14, ly, escape(s.name));
  }
  return svg;
}

}  // namespace

void write_svg(const std::vector<LineChart>& charts, const std::string& path) {
  std::ostringstream out;
  // Two charts to a row.
  const size_t columns = std::min<size_t>(2, std::max<size_t>(1, charts.size())), rows = (charts.size() + 1) / 2;
  out << fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{:.0f}' height='{:.0f}' font-family='sans-serif'>\n"
      "<rect width='100%' height='100%' fill='white'/>\n",
      kWidth * static_cast<double>(columns), kHeight * static_cast<double>(std::max<size_t>(1, rows)));
  for (size_t i = 0; i < charts.size(); ++i)
    out << chart_svg(charts[i], kWidth * static_cast<double>(i % 2), kHeight * static_cast<double>(i / 2));
  out << "</svg>\n";
  write_file_atomically(path, out.str());
}

void write_svg(const LineChart& chart, const std::string& path) { write_svg(std::vector<LineChart>{chart}, path); }

void write_svg(const BarChart& chart, const std::string& path) {
  constexpr double kLabel = 260, kBar = 320, kRow = 18;
  const double height = kTop + kRow * static_cast<double>(chart.labels.size()) + 44;
  std::ostringstream out;
  out << fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{:.0f}' height='{:.0f}' font-family='sans-serif'>\n"
      "<rect width='100%' height='100%' fill='white'/>\n"
      "<text x='{:.0f}' y='20' font-size='14' text-anchor='middle' font-weight='bold'>{}</text>\n",
      kLabel + kBar + 80, height, (kLabel + kBar + 80) / 2, escape(chart.title));
  // A value axis along the bottom, with grid lines through the bars.
  const double bottom = kTop + kRow * static_cast<double>(chart.labels.size());
  if (chart.max > 0) {
    const double step = tick_step(chart.max);
    for (double t = 0; t <= chart.max * (1 + 1e-9); t += step) {
      const double x = kLabel + t / chart.max * kBar;
      out << fmt::format(
          "<line x1='{0:.1f}' x2='{0:.1f}' y1='{1:.1f}' y2='{2:.1f}' stroke='#ddd'/>"
          "<text x='{0:.1f}' y='{3:.1f}' font-size='10' text-anchor='middle'>{4:.3g}</text>\n",
          x, kTop, bottom + 3, bottom + 14, t);
    }
  }
  for (size_t i = 0; i < chart.labels.size() && i < chart.values.size(); ++i) {
    const double y = kTop + kRow * static_cast<double>(i), v = chart.values[i];
    const double w = chart.max > 0 ? std::clamp(v / chart.max, 0.0, 1.0) * kBar : 0;
    out << fmt::format(
        "<text x='{:.0f}' y='{:.1f}' font-size='11' text-anchor='end'>{}</text>"
        "<rect x='{:.0f}' y='{:.1f}' width='{:.1f}' height='{:.0f}' fill='{}'/>"
        "<text x='{:.1f}' y='{:.1f}' font-size='11'>{:.3g}</text>\n",
        kLabel - 6, y + 12, escape(chart.labels[i]), kLabel, y + 2, w, kRow - 4, kColours[0], kLabel + w + 4, y + 12, v);
  }
  out << fmt::format("<text x='{:.0f}' y='{:.0f}' font-size='12' text-anchor='middle'>{}</text>\n</svg>\n",
                     kLabel + kBar / 2, height - 8, escape(chart.value_label));
  write_file_atomically(path, out.str());
}

}  // namespace neurite::train
