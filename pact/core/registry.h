// Name-keyed factories for every component kind (models, datasets, optimizers, LR schedules,
// quantizers).
//
// A kind is described by a selector proto `Spec` whose `oneof impl` lists the implementations;
// the registry key of an implementation is its oneof field name, so a recipe's
// `model { resnet20 { depth: 20 } }` picks the factory registered as "resnet20". Components
// register themselves from their own .cc with a one-line macro (PACT_REGISTER_MODEL, ...), so
// adding one needs new files, one line in the spec proto and one BUILD line, never a change to
// the trainer. Component libraries must be alwayslink (pact_component in build_defs.bzl does it).
//
// A registration may carry a validator `void(const Options&, Violations&)` that checks the
// options alone (ranges, consistency). Create runs it before the factory, and recipe validation
// runs it through Validate, so factories do not repeat those checks.
//
// Each kind owns exactly one registry instance, returned by an accessor defined out of line in
// one .cc (e.g. models::GetModelRegistry()), built on first use and never destroyed.
#ifndef PACT_CORE_REGISTRY_H_
#define PACT_CORE_REGISTRY_H_

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"  // before raw_logging.h: glog 0.6 needs its macros first
#include "glog/raw_logging.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "pact/core/violations.h"

namespace pact {

// The field name selected in `spec`'s `oneof impl` ("sgd"), or "" if none (or no such oneof).
inline std::string SelectedName(const google::protobuf::Message& spec) {
  const google::protobuf::OneofDescriptor* oneof = spec.GetDescriptor()->FindOneofByName("impl");
  if (oneof == nullptr) return "";
  const google::protobuf::FieldDescriptor* field =
      spec.GetReflection()->GetOneofFieldDescriptor(spec, oneof);
  return field == nullptr ? "" : field->name();
}

template <typename Spec, typename Product, typename Context>
class ComponentRegistry {
 public:
  using Factory = std::function<absl::StatusOr<Product>(const google::protobuf::Message& options,
                                                        const Context& context)>;
  // Checks `options` (of the registered type) alone; may be empty.
  using Validator =
      std::function<void(const google::protobuf::Message& options, Violations& violations)>;

  // `kind` names the component kind in messages ("model"); `aggregator` is the Bazel target
  // that links every implementation ("//models:all_models").
  ComponentRegistry(absl::string_view kind, absl::string_view aggregator)
      : kind_(kind), aggregator_(aggregator) {}

  ComponentRegistry(const ComponentRegistry&) = delete;
  ComponentRegistry& operator=(const ComponentRegistry&) = delete;

  // Fails if `name` is taken, is not a field of Spec's `impl` oneof, or that field's message
  // type is not `options_type`.
  absl::Status Register(absl::string_view name, const google::protobuf::Descriptor* options_type,
                        Factory factory, absl::string_view registered_at,
                        Validator validator = nullptr) {
    const google::protobuf::FieldDescriptor* field = FindChoice(name);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind_, " '", name, "' registered at ", registered_at, " is not a choice of ",
                       Spec::descriptor()->full_name(), ".impl; choices: {",
                       absl::StrJoin(ChoiceNames(), ", "), "}"));
    }
    if (field->message_type() != options_type) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind_, " '", name, "' registered at ", registered_at, " takes ",
                       options_type->full_name(), " but ", Spec::descriptor()->full_name(), ".",
                       name, " is ", field->message_type()->full_name()));
    }
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = entries_.try_emplace(
        std::string(name),
        Entry{std::move(factory), std::move(validator), std::string(registered_at)});
    if (!inserted) {
      return absl::AlreadyExistsError(absl::StrCat(kind_, " '", name, "' registered twice: at ",
                                                   it->second.registered_at, " and at ",
                                                   registered_at));
    }
    return absl::OkStatus();
  }

  // For tests only (ScopedRegistration).
  void Unregister(absl::string_view name) {
    absl::MutexLock lock(&mu_);
    entries_.erase(std::string(name));
  }

  // Builds what `spec` selects. InvalidArgument when nothing is selected, NotFound when the
  // selected implementation is not linked, otherwise as CreateByName.
  absl::StatusOr<Product> Create(const Spec& spec, const Context& context) const {
    const google::protobuf::Reflection* reflection = spec.GetReflection();
    const google::protobuf::FieldDescriptor* field =
        reflection->GetOneofFieldDescriptor(spec, ImplOneof());
    if (field == nullptr) return absl::InvalidArgumentError(absl::StrCat(kind_, ": ", NoChoice()));
    return CreateByName(field->name(), reflection->GetMessage(spec, field), context);
  }

  // Builds the implementation `name` from its options message: InvalidArgument listing the
  // validator's violations ("<kind> '<name>': <name>.<field>: ..."), else the factory's result
  // with the message prefixed "<kind> '<name>': ".
  absl::StatusOr<Product> CreateByName(absl::string_view name,
                                       const google::protobuf::Message& options,
                                       const Context& context) const {
    Entry entry;
    if (!Find(name, &entry)) return UnknownName(name);
    if (entry.validator) {
      Violations violations(name);
      entry.validator(options, violations);
      if (!violations.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kind_, " '", name, "': ", absl::StrJoin(violations.list(), "; ")));
      }
    }
    absl::StatusOr<Product> product = entry.factory(options, context);
    if (!product.ok()) {
      return absl::Status(product.status().code(),
                          absl::StrCat(kind_, " '", name, "': ", product.status().message()));
    }
    return product;
  }

  // Adds the problems of `spec` under field path `path` ("optimizer"): none selected, the
  // selection not linked, or its validator's violations under "<path>.<name>".
  void Validate(const Spec& spec, absl::string_view path, Violations& violations) const {
    const google::protobuf::Reflection* reflection = spec.GetReflection();
    const google::protobuf::FieldDescriptor* field =
        reflection->GetOneofFieldDescriptor(spec, ImplOneof());
    if (field == nullptr) {
      violations.Add(path, NoChoice());
      return;
    }
    Entry entry;
    if (!Find(field->name(), &entry)) {
      violations.Add(path, UnknownName(field->name()).message());
      return;
    }
    if (!entry.validator) return;
    Violations scoped = violations.Scoped(path).Scoped(field->name());
    entry.validator(reflection->GetMessage(spec, field), scoped);
  }

  // OK when `name` is linked; otherwise the NotFound error Create would give.
  absl::Status CheckName(absl::string_view name) const {
    if (Contains(name)) return absl::OkStatus();
    return UnknownName(name);
  }

  bool Contains(absl::string_view name) const {
    absl::MutexLock lock(&mu_);
    return entries_.contains(std::string(name));
  }

  // Linked implementations, sorted.
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [name, entry] : entries_) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // The spec's oneof choices, in declaration order (the menu, linked or not).
  static std::vector<std::string> ChoiceNames() {
    std::vector<std::string> names;
    const google::protobuf::OneofDescriptor* oneof = ImplOneof();
    for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
    return names;
  }

 private:
  struct Entry {
    Factory factory;
    Validator validator;
    std::string registered_at;
  };

  bool Find(absl::string_view name, Entry* entry) const {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(std::string(name));
    if (it == entries_.end()) return false;
    *entry = it->second;
    return true;
  }

  static std::string NoChoice() {
    return absl::StrCat("no implementation selected; set exactly one of {",
                        absl::StrJoin(ChoiceNames(), ", "), "}");
  }

  static const google::protobuf::OneofDescriptor* ImplOneof() {
    const google::protobuf::OneofDescriptor* oneof = Spec::descriptor()->FindOneofByName("impl");
    if (oneof == nullptr) {
      RAW_LOG(FATAL, "%s has no `oneof impl`", Spec::descriptor()->full_name().c_str());
    }
    return oneof;
  }

  static const google::protobuf::FieldDescriptor* FindChoice(absl::string_view name) {
    const google::protobuf::FieldDescriptor* field =
        Spec::descriptor()->FindFieldByName(std::string(name));
    if (field == nullptr || field->containing_oneof() != ImplOneof()) return nullptr;
    return field;
  }

  absl::Status UnknownName(absl::string_view name) const {
    const std::string linked = absl::StrCat("[", absl::StrJoin(Names(), ", "), "]");
    if (FindChoice(name) != nullptr) {
      return absl::NotFoundError(
          absl::StrCat(kind_, " '", name, "' is declared in ", Spec::descriptor()->full_name(),
                       " but not linked into this binary; linked: ", linked,
                       "; add its library (pact_component, alwayslink) to ", aggregator_));
    }
    return absl::NotFoundError(absl::StrCat("unknown ", kind_, " '", name, "'; known: ", linked));
  }

  const std::string kind_;
  const std::string aggregator_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

namespace internal {

// Adapts a typed validator `void(const Options&, Violations&)`; options of another type are
// left to the factory, which reports them.
template <typename Options, typename TypedValidator>
std::function<void(const google::protobuf::Message&, Violations&)> AdaptValidator(
    TypedValidator validator) {
  return [validator](const google::protobuf::Message& options, Violations& violations) {
    if (options.GetDescriptor() != Options::descriptor()) return;
    validator(static_cast<const Options&>(options), violations);
  };
}

// Adapts a typed factory `StatusOr<Product>(const Options&, const Context&)` (and optionally a
// typed validator) and registers it; aborts at static-initialization time (RAW_LOG: glog is
// not initialized yet) on failure.
template <typename Options, typename Registry, typename TypedFactory, typename... TypedValidator>
bool RegisterComponent(Registry& registry, const char* name, const char* registered_at,
                       TypedFactory factory, TypedValidator... validator) {
  static_assert(sizeof...(validator) <= 1, "at most one validator");
  typename Registry::Validator adapted;
  if constexpr (sizeof...(validator) == 1) adapted = AdaptValidator<Options>(validator...);
  const absl::Status status = registry.Register(
      name, Options::descriptor(),
      [factory](const google::protobuf::Message& options, const auto& context) {
        if (options.GetDescriptor() != Options::descriptor()) {
          return decltype(factory(std::declval<const Options&>(), context))(absl::InternalError(
              absl::StrCat("options of type ", options.GetDescriptor()->full_name(),
                           " given to a factory of ", Options::descriptor()->full_name())));
        }
        return factory(static_cast<const Options&>(options), context);
      },
      registered_at, std::move(adapted));
  if (!status.ok()) RAW_LOG(FATAL, "%s", std::string(status.message()).c_str());
  return true;
}

}  // namespace internal

// Registers `factory` (and an optional validator `void(const OptionsType&, Violations&)`, as a
// fifth argument) as implementation `name` (an identifier equal to the spec's oneof field) of
// the registry `registry_expr`. Use in a .cc file at namespace scope, never in a header.
//   PACT_REGISTER_COMPONENT(Registry(), sgd, SgdOptions, BuildSgd, ValidateSgd)
#define PACT_REGISTER_COMPONENT(registry_expr, name, OptionsType, ...)                         \
  namespace {                                                                                  \
  [[maybe_unused]] const bool pact_registered_##name =                                         \
      ::pact::internal::RegisterComponent<OptionsType>(                                        \
          registry_expr, #name, __FILE__ ":" PACT_REGISTRY_STRINGIFY_(__LINE__), __VA_ARGS__); \
  }

#define PACT_REGISTRY_STRINGIFY_INNER_(x) #x
#define PACT_REGISTRY_STRINGIFY_(x) PACT_REGISTRY_STRINGIFY_INNER_(x)

// Test helper: registers in the constructor, unregisters in the destructor.
template <typename Registry>
class ScopedRegistration {
 public:
  template <typename Options, typename TypedFactory, typename... TypedValidator>
  static absl::StatusOr<std::unique_ptr<ScopedRegistration>> Create(Registry& registry,
                                                                    absl::string_view name,
                                                                    TypedFactory factory,
                                                                    TypedValidator... validator) {
    static_assert(sizeof...(validator) <= 1, "at most one validator");
    typename Registry::Validator adapted;
    if constexpr (sizeof...(validator) == 1) {
      adapted = internal::AdaptValidator<Options>(validator...);
    }
    absl::Status status = registry.Register(
        name, Options::descriptor(),
        [factory](const google::protobuf::Message& options, const auto& context) {
          return factory(static_cast<const Options&>(options), context);
        },
        "ScopedRegistration", std::move(adapted));
    if (!status.ok()) return status;
    return std::unique_ptr<ScopedRegistration>(new ScopedRegistration(registry, name));
  }
  ~ScopedRegistration() { registry_.Unregister(name_); }

 private:
  ScopedRegistration(Registry& registry, absl::string_view name)
      : registry_(registry), name_(name) {}
  Registry& registry_;
  std::string name_;
};

}  // namespace pact

#endif  // PACT_CORE_REGISTRY_H_
