#include "pact/train/plot.h"

#include <png.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pact/core/file.h"

namespace pact::train {
namespace {

struct Color {
  uint8_t r, g, b;
};
constexpr Color kWhite{255, 255, 255};
constexpr Color kBlack{40, 40, 40};
constexpr Color kGrid{225, 225, 225};
constexpr Color kTrain{31, 119, 180};
constexpr Color kEval{255, 127, 14};

// 5x7 glyphs (bit 4 = leftmost column) for the characters the labels use; others are blank.
const std::map<char, std::array<uint8_t, 7>>& Font() {
  static const auto* font = new std::map<char, std::array<uint8_t, 7>>{
      {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
      {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
      {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
      {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
      {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
      {'.', {0, 0, 0, 0, 0, 12, 12}},      {'%', {24, 25, 2, 4, 8, 19, 3}},
      {'-', {0, 0, 0, 31, 0, 0, 0}},       {'(', {2, 4, 8, 8, 8, 4, 2}},
      {')', {8, 4, 2, 2, 2, 4, 8}},        {'A', {14, 17, 17, 31, 17, 17, 17}},
      {'C', {14, 17, 16, 16, 16, 17, 14}}, {'E', {31, 16, 16, 30, 16, 16, 31}},
      {'H', {17, 17, 17, 31, 17, 17, 17}}, {'I', {14, 4, 4, 4, 4, 4, 14}},
      {'L', {16, 16, 16, 16, 16, 16, 31}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
      {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}},
      {'R', {30, 17, 17, 30, 20, 18, 17}}, {'S', {15, 16, 16, 14, 1, 1, 30}},
      {'T', {31, 4, 4, 4, 4, 4, 4}},       {'V', {17, 17, 17, 17, 17, 10, 4}},
  };
  return *font;
}

class Canvas {
 public:
  Canvas(int width, int height) : width_(width), height_(height), pixels_(width * height * 3) {
    Fill(0, 0, width, height, kWhite);
  }

  void Set(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    uint8_t* p = &pixels_[(static_cast<size_t>(y) * width_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }

  void Fill(int x0, int y0, int x1, int y1, Color c) {
    for (int y = y0; y < y1; ++y) {
      for (int x = x0; x < x1; ++x) Set(x, y, c);
    }
  }

  // Bresenham line, `thickness` pixels wide.
  void Line(int x0, int y0, int x1, int y1, Color c, int thickness = 1) {
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    while (true) {
      Fill(x0 - thickness / 2, y0 - thickness / 2, x0 - thickness / 2 + thickness,
           y0 - thickness / 2 + thickness, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

  // Text at scale 2 (10x14 pixels per glyph plus spacing); lower case drawn as upper case.
  void Text(int x, int y, const std::string& text, Color c) {
    for (char ch : text) {
      const char upper = (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch;
      auto it = Font().find(upper);
      if (it != Font().end()) {
        for (int row = 0; row < 7; ++row) {
          for (int col = 0; col < 5; ++col) {
            if (it->second[row] & (1 << (4 - col)))
              Fill(x + col * 2, y + row * 2, x + col * 2 + 2, y + row * 2 + 2, c);
          }
        }
      }
      x += 12;
    }
  }

  absl::Status WritePng(const std::string& path) const {
    return WriteFileAtomicallyWith(path,
                                   [this](const std::string& tmp) { return WritePngTo(tmp); });
  }

 private:
  // Writes the PNG to `tmp`; WritePng then publishes it under its real name.
  absl::Status WritePngTo(const std::string& tmp) const {
    FILE* file = std::fopen(tmp.c_str(), "wb");
    if (file == nullptr) return absl::PermissionDeniedError(absl::StrCat(tmp, ": cannot open"));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
      png_destroy_write_struct(&png, &info);
      std::fclose(file);
      return absl::InternalError(absl::StrCat(tmp, ": libpng failed"));
    }
    png_init_io(png, file);
    png_set_IHDR(png, info, width_, height_, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height_; ++y) {
      png_write_row(png, const_cast<png_bytep>(&pixels_[static_cast<size_t>(y) * width_ * 3]));
    }
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    if (std::fclose(file) != 0) return absl::DataLossError(absl::StrCat(tmp, ": write failed"));
    return absl::OkStatus();
  }

  int width_, height_;
  std::vector<uint8_t> pixels_;
};

struct Series {
  std::vector<std::pair<double, double>> points;  // (epoch, value)
  Color color;
};

// One panel: axes, grid, min/max labels and the series.
void Panel(Canvas& canvas, int left, int top, int width, int height, const std::string& title,
           const std::vector<Series>& series) {
  double x_min = std::numeric_limits<double>::max(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const auto& s : series) {
    for (const auto& [x, y] : s.points) {
      x_min = std::min(x_min, x), x_max = std::max(x_max, x);
      y_min = std::min(y_min, y), y_max = std::max(y_max, y);
    }
  }
  if (x_min > x_max) return;
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  const double pad = 0.05 * (y_max - y_min);
  y_min -= pad;
  y_max += pad;
  const int plot_left = left + 80, plot_top = top + 30;
  const int plot_w = width - 100, plot_h = height - 70;
  for (int i = 0; i <= 4; ++i) {
    const int y = plot_top + plot_h * i / 4;
    canvas.Line(plot_left, y, plot_left + plot_w, y, kGrid);
    const double value = y_max - (y_max - y_min) * i / 4;
    canvas.Text(left, y - 7, absl::StrFormat("%.3g", value), kBlack);
  }
  canvas.Line(plot_left, plot_top, plot_left, plot_top + plot_h, kBlack, 2);
  canvas.Line(plot_left, plot_top + plot_h, plot_left + plot_w, plot_top + plot_h, kBlack, 2);
  canvas.Text(plot_left, top + 4, title, kBlack);
  canvas.Text(plot_left, plot_top + plot_h + 10, absl::StrFormat("%.0f", x_min), kBlack);
  const std::string last = absl::StrFormat("EPOCH %.0f", x_max);
  canvas.Text(plot_left + plot_w - 12 * static_cast<int>(last.size()), plot_top + plot_h + 10, last,
              kBlack);
  auto to_px = [&](double x, double y) {
    return std::make_pair(
        plot_left + static_cast<int>(std::lround((x - x_min) / (x_max - x_min) * plot_w)),
        plot_top + static_cast<int>(std::lround((y_max - y) / (y_max - y_min) * plot_h)));
  };
  for (const auto& s : series) {
    for (size_t i = 0; i < s.points.size(); ++i) {
      const auto [x, y] = to_px(s.points[i].first, s.points[i].second);
      canvas.Fill(x - 3, y - 3, x + 4, y + 4, s.color);
      if (i > 0) {
        const auto [px, py] = to_px(s.points[i - 1].first, s.points[i - 1].second);
        canvas.Line(px, py, x, y, s.color, 3);
      }
    }
  }
}

}  // namespace

absl::Status WriteCurvesPng(const std::string& path, const std::vector<EpochMetrics>& history) {
  if (history.empty()) return absl::FailedPreconditionError("no epoch to plot");
  Series train_loss{{}, kTrain}, eval_loss{{}, kEval}, train_top1{{}, kTrain}, eval_top1{{}, kEval};
  for (const auto& m : history) {
    const double x = m.epoch() + 1;
    train_loss.points.emplace_back(x, m.train_loss());
    train_top1.points.emplace_back(x, m.train_top1());
    if (m.has_eval_top1()) {
      eval_loss.points.emplace_back(x, m.eval_loss());
      eval_top1.points.emplace_back(x, m.eval_top1());
    }
  }
  Canvas canvas(1200, 480);
  Panel(canvas, 10, 10, 590, 430, "LOSS", {train_loss, eval_loss});
  Panel(canvas, 610, 10, 590, 430, "TOP-1 (%)", {train_top1, eval_top1});
  canvas.Fill(420, 452, 440, 466, kTrain);
  canvas.Text(448, 452, "TRAIN", kBlack);
  canvas.Fill(560, 452, 580, 466, kEval);
  canvas.Text(588, 452, "EVAL", kBlack);
  return canvas.WritePng(path);
}

}  // namespace pact::train
