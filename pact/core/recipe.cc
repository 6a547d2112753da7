#include "pact/core/recipe.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"

namespace pact {
namespace {

class Violations {
 public:
  template <typename T>
  void Check(bool ok, absl::string_view path, absl::string_view requirement, const T& value) {
    if (!ok) list_.push_back(absl::StrCat(path, ": ", requirement, ", got ", value));
  }
  void Add(std::string violation) { list_.push_back(std::move(violation)); }
  std::vector<std::string> Take() { return std::move(list_); }

 private:
  std::vector<std::string> list_;
};

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

template <typename Spec>
void CheckSelected(const Spec& spec, absl::string_view path, Violations& v) {
  const auto* oneof = Spec::descriptor()->FindOneofByName("impl");
  if (spec.GetReflection()->GetOneofFieldDescriptor(spec, oneof) != nullptr) return;
  std::vector<std::string> names;
  for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
  v.Add(absl::StrCat(path, ": no implementation selected; set exactly one of {",
                     absl::StrJoin(names, ", "), "}"));
}

void CheckDataset(const datasets::DatasetSpec& d, absl::string_view path, Violations& v) {
  CheckSelected(d, path, v);
  v.Check(d.split() != datasets::SPLIT_UNSPECIFIED, absl::StrCat(path, ".split"),
          "must be SPLIT_TRAIN or SPLIT_TEST", datasets::Split_Name(d.split()));
  v.Check(d.workers() >= 0 && d.workers() <= 256, absl::StrCat(path, ".workers"),
          "must be in [0, 256]", d.workers());
  if (d.has_normalize()) {
    const auto& n = d.normalize();
    v.Check(n.mean_size() == n.std_size() && n.mean_size() > 0, absl::StrCat(path, ".normalize"),
            "mean and std need the same, non-zero length",
            absl::StrCat(n.mean_size(), " means and ", n.std_size(), " stds"));
    for (int i = 0; i < n.std_size(); ++i) {
      v.Check(n.std(i) > 0, absl::StrCat(path, ".normalize.std[", i, "]"), "must be > 0", n.std(i));
    }
  }
}

void CheckOptimizer(const optim::OptimizerSpec& o, Violations& v) {
  CheckSelected(o, "optimizer", v);
  if (o.has_sgd()) {
    const auto& s = o.sgd();
    v.Check(s.lr() > 0, "optimizer.sgd.lr", "must be > 0", s.lr());
    v.Check(s.momentum() >= 0 && s.momentum() < 1, "optimizer.sgd.momentum", "must be in [0, 1)",
            s.momentum());
    v.Check(s.weight_decay() >= 0, "optimizer.sgd.weight_decay", "must be >= 0", s.weight_decay());
    v.Check(s.dampening() >= 0 && s.dampening() < 1, "optimizer.sgd.dampening", "must be in [0, 1)",
            s.dampening());
    v.Check(!s.nesterov() || (s.momentum() > 0 && s.dampening() == 0), "optimizer.sgd.nesterov",
            "needs momentum > 0 and dampening 0",
            absl::StrCat("momentum ", s.momentum(), ", dampening ", s.dampening()));
  }
  if (o.has_adam()) {
    const auto& a = o.adam();
    v.Check(a.lr() > 0, "optimizer.adam.lr", "must be > 0", a.lr());
    v.Check(a.beta1() >= 0 && a.beta1() < 1, "optimizer.adam.beta1", "must be in [0, 1)",
            a.beta1());
    v.Check(a.beta2() >= 0 && a.beta2() < 1, "optimizer.adam.beta2", "must be in [0, 1)",
            a.beta2());
    v.Check(a.eps() > 0, "optimizer.adam.eps", "must be > 0", a.eps());
    v.Check(a.weight_decay() >= 0, "optimizer.adam.weight_decay", "must be >= 0", a.weight_decay());
  }
}

void CheckSchedule(const optim::LrScheduleSpec& s, int epochs, Violations& v) {
  if (s.has_multi_step()) {
    const auto& m = s.multi_step();
    for (int i = 0; i < m.milestones_size(); ++i) {
      v.Check(m.milestones(i) > 0, absl::StrCat("lr_schedule.multi_step.milestones[", i, "]"),
              "must be > 0", m.milestones(i));
      if (i > 0) {
        v.Check(
            m.milestones(i) > m.milestones(i - 1),
            absl::StrCat("lr_schedule.multi_step.milestones[", i, "]"),
            absl::StrCat("must be greater than the previous milestone (", m.milestones(i - 1), ")"),
            m.milestones(i));
      }
    }
    v.Check(m.gamma() > 0 && m.gamma() <= 1, "lr_schedule.multi_step.gamma", "must be in (0, 1]",
            m.gamma());
  }
  if (s.has_step()) {
    v.Check(s.step().step_epochs() > 0, "lr_schedule.step.step_epochs", "must be > 0",
            s.step().step_epochs());
    v.Check(s.step().gamma() > 0 && s.step().gamma() <= 1, "lr_schedule.step.gamma",
            "must be in (0, 1]", s.step().gamma());
  }
}

void CheckQuantization(const QuantizationSpec& q, int epochs, Violations& v) {
  if (q.activation().has_pact()) {
    const auto& p = q.activation().pact();
    v.Check(p.bits() >= 0 && p.bits() <= 16, "quantization.activation.pact.bits",
            "must be in [0, 16] (0 = clipping without quantization)", p.bits());
    v.Check(p.alpha_init() > 0, "quantization.activation.pact.alpha_init", "must be > 0",
            p.alpha_init());
    v.Check(p.alpha_min() > 0, "quantization.activation.pact.alpha_min", "must be > 0",
            p.alpha_min());
    v.Check(p.alpha_min() <= p.alpha_init(), "quantization.activation.pact.alpha_min",
            absl::StrCat("must be <= alpha_init (", p.alpha_init(), ")"), p.alpha_min());
  }
  if (q.weight().has_dorefa()) {
    const int bits = q.weight().dorefa().bits();
    v.Check((bits >= 0 && bits <= 16) || bits == 32, "quantization.weight.dorefa.bits",
            "must be in [0, 16] or 32 (0 and 32 = full precision)", bits);
  }
  if (q.has_lambda_alpha()) {
    v.Check(q.lambda_alpha() >= 0, "quantization.lambda_alpha", "must be >= 0", q.lambda_alpha());
  }
  v.Check(q.quant_warmup_epochs() >= 0 && q.quant_warmup_epochs() <= epochs,
          "quantization.quant_warmup_epochs",
          absl::StrCat("must be in [0, train.epochs = ", epochs, "]"), q.quant_warmup_epochs());
}

void CheckTrain(const TrainSpec& t, Violations& v) {
  v.Check(t.epochs() > 0, "train.epochs", "must be > 0", t.epochs());
  v.Check(t.batch_size() > 0, "train.batch_size", "must be > 0", t.batch_size());
  v.Check(t.eval_batch_size() > 0, "train.eval_batch_size", "must be > 0", t.eval_batch_size());
  v.Check(t.device() != DEVICE_UNSPECIFIED, "train.device", "must be DEVICE_CPU or DEVICE_CUDA",
          Device_Name(t.device()));
  v.Check(t.threads() >= 0, "train.threads", "must be >= 0 (0 = all cores)", t.threads());
  v.Check(t.eval_every_epochs() > 0, "train.eval_every_epochs", "must be > 0",
          t.eval_every_epochs());
  v.Check(t.checkpoint().every_epochs() > 0, "train.checkpoint.every_epochs", "must be > 0",
          t.checkpoint().every_epochs());
  v.Check(t.log_every_steps() > 0, "train.log_every_steps", "must be > 0", t.log_every_steps());
}

}  // namespace

std::vector<std::string> RecipeViolations(const Recipe& recipe) {
  Violations v;
  bool name_ok = !recipe.name().empty();
  for (char c : recipe.name()) name_ok = name_ok && IsNameChar(c);
  v.Check(name_ok, "name", "must be non-empty letters, digits, '_', '-' or '.'",
          absl::StrCat("\"", recipe.name(), "\""));
  CheckSelected(recipe.model(), "model", v);
  CheckDataset(recipe.train_data(), "train_data", v);
  CheckDataset(recipe.eval_data(), "eval_data", v);
  CheckOptimizer(recipe.optimizer(), v);
  CheckSchedule(recipe.lr_schedule(), recipe.train().epochs(), v);
  CheckQuantization(recipe.quantization(), recipe.train().epochs(), v);
  CheckTrain(recipe.train(), v);
  return v.Take();
}

absl::Status ValidateRecipe(const Recipe& recipe) {
  const std::vector<std::string> violations = RecipeViolations(recipe);
  if (violations.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid recipe (", violations.size(), " problem",
                                                 violations.size() == 1 ? "" : "s", "):\n  ",
                                                 absl::StrJoin(violations, "\n  ")));
}

absl::StatusOr<Recipe> LoadRecipe(const std::string& path, absl::string_view overrides) {
  Recipe recipe;
  PACT_RETURN_IF_ERROR(ReadTextProtoFile(path, &recipe));
  if (!overrides.empty()) {
    PACT_RETURN_IF_ERROR(MergeTextOverrides(overrides, "--recipe_overrides", &recipe));
  }
  PACT_RETURN_WITH_CONTEXT_IF_ERROR(ValidateRecipe(recipe), path);
  return recipe;
}

double OptimizerWeightDecay(const Recipe& recipe) {
  if (recipe.optimizer().has_sgd()) return recipe.optimizer().sgd().weight_decay();
  if (recipe.optimizer().has_adam()) return recipe.optimizer().adam().weight_decay();
  return 0.0;
}

double EffectiveLambdaAlpha(const Recipe& recipe) {
  if (recipe.quantization().has_lambda_alpha()) return recipe.quantization().lambda_alpha();
  return OptimizerWeightDecay(recipe);
}

}  // namespace pact
