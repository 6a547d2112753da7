#include "pact/core/registry.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pact/core/registry_test.pb.h"
#include "pact/core/test_util.h"

namespace pact {
namespace {

using core_test::GadgetOptions;
using core_test::OtherOptions;
using core_test::WidgetOptions;
using core_test::WidgetSpec;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Context {
  int scale = 1;
};
using WidgetRegistry = ComponentRegistry<WidgetSpec, std::string, Context>;

WidgetRegistry& TestRegistry() {
  static auto* registry = new WidgetRegistry("widget", "//pact/core:all_widgets");
  return *registry;
}

int widget_builds = 0;

absl::StatusOr<std::string> BuildWidget(const WidgetOptions& options, const Context& context) {
  ++widget_builds;
  if (options.size() < 0) return absl::InvalidArgumentError("size: must be >= 0");
  return std::string(options.size() * context.scale, 'w');
}

// Negative sizes are left to the factory, to test both paths.
void ValidateWidget(const WidgetOptions& options, Violations& v) {
  v.Check(options.size() <= 100, "size", "must be <= 100", options.size());
  v.Check(options.size() != 13, "size", "must not be 13", options.size());
}

absl::StatusOr<std::string> BuildGadget(const GadgetOptions& options, const Context&) {
  return "gadget:" + options.label();
}

// One-line static registration, as component .cc files do.
PACT_REGISTER_COMPONENT(TestRegistry(), widget, WidgetOptions, BuildWidget, ValidateWidget)

TEST(RegistryTest, StaticRegistrationIsVisible) {
  EXPECT_TRUE(TestRegistry().Contains("widget"));
  EXPECT_FALSE(TestRegistry().Contains("gadget"));
}

TEST(RegistryTest, CreateBuildsTheSelectedChoice) {
  const auto spec = testing::ParseTextProtoOrDie<WidgetSpec>("widget { size: 2 }");
  PACT_ASSERT_OK_AND_ASSIGN(std::string product, TestRegistry().Create(spec, Context{3}));
  EXPECT_EQ(product, "wwwwww");
}

TEST(RegistryTest, ScopedRegistrationAddsAndRemoves) {
  {
    PACT_ASSERT_OK_AND_ASSIGN(auto scoped,
                              (ScopedRegistration<WidgetRegistry>::Create<GadgetOptions>(
                                  TestRegistry(), "gadget", BuildGadget)));
    const auto spec = testing::ParseTextProtoOrDie<WidgetSpec>("gadget { label: 'x' }");
    PACT_ASSERT_OK_AND_ASSIGN(std::string product, TestRegistry().Create(spec, Context{}));
    EXPECT_EQ(product, "gadget:x");
    EXPECT_THAT(TestRegistry().Names(), ElementsAre("gadget", "widget"));
  }
  EXPECT_THAT(TestRegistry().Names(), ElementsAre("widget"));
}

TEST(RegistryTest, DuplicateNameIsRejectedWithBothLocations) {
  const absl::Status status = TestRegistry().Register(
      "widget", WidgetOptions::descriptor(),
      [](const google::protobuf::Message&, const Context&) -> absl::StatusOr<std::string> {
        return std::string();
      },
      "other.cc:7");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(status.message()), HasSubstr("registry_test.cc:"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("other.cc:7"));
}

TEST(RegistryTest, NameMustBeAOneofChoice) {
  const absl::Status status =
      TestRegistry().Register("not_a_choice", WidgetOptions::descriptor(), nullptr, "x.cc:1");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("choices: {widget, gadget, spare}"));
}

TEST(RegistryTest, OptionsTypeMustMatchTheField) {
  const absl::Status status =
      TestRegistry().Register("spare", OtherOptions::descriptor(), nullptr, "x.cc:1");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("pact.core_test.WidgetOptions"));
}

TEST(RegistryTest, NothingSelectedListsTheChoices) {
  const auto result = TestRegistry().Create(WidgetSpec(), Context{});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "widget: no implementation selected; set exactly one of {widget, gadget, spare}");
}

TEST(RegistryTest, DeclaredButNotLinkedNamesTheAggregator) {
  const auto spec = testing::ParseTextProtoOrDie<WidgetSpec>("spare {}");
  const auto result = TestRegistry().Create(spec, Context{});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(),
            "widget 'spare' is declared in pact.core_test.WidgetSpec but not linked into this "
            "binary; linked: [widget]; add its library (pact_component, alwayslink) to "
            "//pact/core:all_widgets");
}

TEST(RegistryTest, UnknownNameListsSortedKnownNames) {
  PACT_ASSERT_OK_AND_ASSIGN(auto scoped, (ScopedRegistration<WidgetRegistry>::Create<GadgetOptions>(
                                             TestRegistry(), "gadget", BuildGadget)));
  const absl::Status status = TestRegistry().CheckName("sprocket");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "unknown widget 'sprocket'; known: [gadget, widget]");
  PACT_EXPECT_OK(TestRegistry().CheckName("gadget"));
}

TEST(RegistryTest, FactoryErrorsArePrefixedWithKindAndName) {
  const auto spec = testing::ParseTextProtoOrDie<WidgetSpec>("widget { size: -1 }");
  const auto result = TestRegistry().Create(spec, Context{});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "widget 'widget': size: must be >= 0");
}

TEST(RegistryTest, CreateRunsTheValidatorBeforeTheFactory) {
  const auto spec = testing::ParseTextProtoOrDie<WidgetSpec>("widget { size: 101 }");
  const int builds = widget_builds;
  const auto result = TestRegistry().Create(spec, Context{});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "widget 'widget': widget.size: must be <= 100, got 101");
  EXPECT_EQ(widget_builds, builds) << "the factory must not run on invalid options";
}

TEST(RegistryTest, ValidatePrefixesThePathAndTheChoice) {
  const auto spec = testing::ParseTextProtoOrDie<WidgetSpec>("widget { size: 13 }");
  Violations v;
  TestRegistry().Validate(spec, "parts.main", v);
  EXPECT_THAT(v.list(), ElementsAre("parts.main.widget.size: must not be 13, got 13"));

  Violations ok;
  TestRegistry().Validate(testing::ParseTextProtoOrDie<WidgetSpec>("widget { size: 2 }"), "w", ok);
  EXPECT_TRUE(ok.empty());
}

TEST(RegistryTest, ValidateReportsNoSelectionAndUnlinkedChoices) {
  Violations v;
  TestRegistry().Validate(WidgetSpec(), "parts.main", v);
  TestRegistry().Validate(testing::ParseTextProtoOrDie<WidgetSpec>("spare {}"), "parts.spare", v);
  ASSERT_EQ(v.size(), 2);
  EXPECT_EQ(v.list()[0],
            "parts.main: no implementation selected; set exactly one of {widget, gadget, spare}");
  EXPECT_THAT(v.list()[1], HasSubstr("parts.spare: widget 'spare' is declared in "));
}

TEST(RegistryTest, ScopedRegistrationTakesAValidator) {
  PACT_ASSERT_OK_AND_ASSIGN(
      auto scoped,
      (ScopedRegistration<WidgetRegistry>::Create<GadgetOptions>(
          TestRegistry(), "gadget", BuildGadget, [](const GadgetOptions& o, Violations& v) {
            v.Check(!o.label().empty(), "label", "must be set", "\"\"");
          })));
  const auto result =
      TestRegistry().Create(testing::ParseTextProtoOrDie<WidgetSpec>("gadget {}"), Context{});
  EXPECT_EQ(result.status().message(), "widget 'gadget': gadget.label: must be set, got \"\"");
}

TEST(RegistryTest, SelectedNameIsTheOneofField) {
  EXPECT_EQ(SelectedName(testing::ParseTextProtoOrDie<WidgetSpec>("gadget {}")), "gadget");
  EXPECT_EQ(SelectedName(WidgetSpec()), "");
  EXPECT_EQ(SelectedName(WidgetOptions()), "") << "no oneof impl";
}

TEST(RegistryTest, ChoiceNamesFollowDeclarationOrder) {
  EXPECT_THAT(WidgetRegistry::ChoiceNames(), ElementsAre("widget", "gadget", "spare"));
}

TEST(RegistryDeathTest, DuplicateStaticRegistrationAbortsAtStartup) {
  EXPECT_DEATH(internal::RegisterComponent<WidgetOptions>(TestRegistry(), "widget", "again.cc:1",
                                                          BuildWidget),
               "registered twice");
}

}  // namespace
}  // namespace pact
