// //tools:train — the one generic trainer. Composes whatever a recipe names.
//
//   bazel run //tools:train -- --recipe=recipes/cifar10_resnet20.pbtxt [--output-dir=runs/x]
//   bazel run //tools:train -- --dataset cifar10 --output-dir runs/cifar10   (the seed's CLI)
//
// Flags may be spelled with dashes (the seed's spelling) or underscores. See --help.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "datasets/dataset.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "models/model.h"
#include "pact/core/file.h"
#include "pact/core/status_macros.h"
#include "pact/core/text_proto.h"
#include "pact/dist/data_parallel.h"
#include "pact/dist/env.h"
#include "pact/dist/launcher.h"
#include "pact/dist/process_group.h"
#include "pact/optim/optimizer.h"
#include "pact/quant/quantizer.h"
#include "pact/train/run_outputs.h"
#include "pact/train/trainer.h"
#include "tools/cli.h"

DEFINE_string(recipe, "", "Recipe (pact.Recipe text proto), e.g. recipes/cifar10_resnet20.pbtxt.");
DEFINE_string(recipe_overrides, "",
              "Text proto merged over the recipe, e.g. 'train { epochs: 1 }'; repeated fields "
              "are replaced.");
DEFINE_string(output_dir, "", "Output folder (default: the recipe's output.dir or runs/<name>).");
DEFINE_bool(dry_run, false,
            "Parse, validate and build every component, print the recipe and the per-layer "
            "model summary, and exit.");
DEFINE_string(resume, "", "Checkpoint file or output folder to continue from.");
DEFINE_string(init_from, "",
              "Fine-tune: start a new run (epoch 0, fresh optimizer) from the tensors of this "
              "*_state_dict.pt, checkpoint (last.pt, best.pt) or run folder that the model has "
              "by name, e.g. a full-precision run's weights for quantization-aware training.");
DEFINE_bool(evaluate, false,
            "Evaluate the model of --resume or --init-from on the eval set once, print loss, "
            "top-1 and top-5, and exit (also --test-only). Writes nothing.");
DEFINE_bool(overwrite, false,
            "Start over in an output folder that already holds a run (removes its checkpoints, "
            "rewrites its metrics). Without it such a folder needs --resume.");
DEFINE_bool(list, false, "List every registered component and exit.");
// The seed's options (train.py), folded into the recipe when given.
DEFINE_string(dataset, "",
              "cifar10 | svhn | imagenet | fashion_mnist (picks the shipped recipe "
              "when --recipe is absent).");
DEFINE_string(model, "", "Model name (required with --dataset imagenet).");
DEFINE_string(data_root, "", "Dataset folder.");
DEFINE_int32(batch_size, 0, "Training batch size.");
DEFINE_int32(workers, 0, "Data-loader threads.");
DEFINE_int32(epochs, 0, "Epochs.");
DEFINE_int32(act_bits, 4, "PACT activation bits (0 = clipping only).");
DEFINE_int32(w_bits, 4, "DoReFa weight bits (0 = full precision).");
DEFINE_bool(quantize_first_last, false, "Also quantize the first and last layers.");
DEFINE_int32(first_last_bits, 0,
             "Bits of the first conv / last linear weights and of the first / last activations "
             "(0 = full precision there, the paper's default; the paper's Table 2 uses 8).");
DEFINE_double(lambda_alpha, 0.0, "L2 coefficient on PACT alphas (default: the weight decay).");
DEFINE_int32(quant_warmup_epochs, 0, "Epochs without quantization first (Option B).");
DEFINE_string(device, "", "cpu | cuda.");
DEFINE_uint64(seed, 1, "Random seed.");
// torchvision's reference-script options (train.py -b/-j/--lr/--wd/--momentum/--lr-steps).
DEFINE_double(lr, 0.0, "Learning rate of the recipe's optimizer.");
DEFINE_double(weight_decay, 0.0, "Weight decay of the recipe's optimizer (also --wd).");
DEFINE_double(momentum, 0.0, "Momentum of the recipe's optimizer (optimizers that have one).");
DEFINE_string(lr_milestones, "",
              "Comma-separated epochs at which multi_step multiplies the LR by its gamma.");
DEFINE_int32(print_freq, 0, "Log a step line every this many steps (train.log_every_steps).");
DEFINE_int32(threads, 0, "Intra-op threads (0 = all cores, split among a machine's workers).");
// Data-parallel training. Workers read RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
// (torchrun's contract); --nproc_per_node starts them itself.
DEFINE_int32(nproc_per_node, 0,
             "Start this many data-parallel worker processes on this machine (torchrun-style; "
             "0 = run as one process, or as the worker the environment describes).");
DEFINE_int32(nnodes, 1, "Machines in the job (with --nproc_per_node; needs MASTER_ADDR).");
DEFINE_int32(node_rank, 0, "This machine's index in [0, nnodes) (with --nproc_per_node).");
DEFINE_string(dist_backend, "", "gloo | nccl (default: nccl for CUDA when available, else gloo).");
DEFINE_double(dist_timeout_s, 300,
              "Seconds a data-parallel rendezvous or collective may wait for the other ranks "
              "before failing (a rank that died or hangs).");
DEFINE_double(dist_bucket_mb, pact::dist::kDefaultBucketBytes / double{1 << 20},
              "Gradient allreduce bucket size in MiB (data-parallel).");

namespace {

bool IsSet(const char* name) { return !gflags::GetCommandLineFlagInfoOrDie(name).is_default; }

// SIGINT and SIGTERM go to one thread, which asks the trainer to stop after its step (and, on
// the second signal, ends the process at once); every other thread blocks them. A handler runs
// on whichever thread the kernel picks and interrupts its system call, and the libraries'
// threads (gloo's transport, OpenMP, oneDNN) are not all written for that: data-parallel runs
// stopped by Ctrl-C occasionally corrupted the heap. Call before any thread is started, so that
// they all inherit the mask.
void HandleStopSignalsOnOneThread() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread([stop_signals] {
    while (true) {
      int signal = 0;
      if (sigwait(&stop_signals, &signal) != 0) continue;
      if (!pact::train::Trainer::StopRequested()) {
        pact::train::Trainer::RequestStop();
        continue;
      }
      // The second one: its default action, at once.
      std::signal(signal, SIG_DFL);
      pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
      std::raise(signal);
      return;
    }
  }).detach();
}

void ListComponents() {
  std::cout << "models: " << absl::StrJoin(pact::models::GetModelRegistry().Names(), ", ")
            << "\ndatasets: " << absl::StrJoin(pact::datasets::GetDatasetRegistry().Names(), ", ")
            << "\nactivation quantizers: "
            << absl::StrJoin(pact::quant::GetActivationQuantizerRegistry().Names(), ", ")
            << "\nweight quantizers: "
            << absl::StrJoin(pact::quant::GetWeightQuantizerRegistry().Names(), ", ")
            << "\noptimizers: " << absl::StrJoin(pact::optim::GetOptimizerRegistry().Names(), ", ")
            << "\nlr schedules: "
            << absl::StrJoin(pact::optim::GetLrScheduleRegistry().Names(), ", ") << "\n";
}

int Fail(const absl::Status& status) {
  std::cerr << "train: error: " << status.message() << std::endl;
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// Parses the flags (dashes or underscores) and starts glog; returns the normalized arguments.
std::vector<std::string> ParseFlags(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  args = pact::tools::NormalizeFlagNames(args);
  std::vector<char*> normalized;
  for (auto& arg : args) normalized.push_back(arg.data());
  int normalized_argc = static_cast<int>(normalized.size());
  char** normalized_argv = normalized.data();
  FLAGS_logtostderr = true;
  gflags::SetUsageMessage(
      "trains a PACT-quantized network from a recipe.\n"
      "  train --recipe=recipes/fashion_mnist_quickstart.pbtxt [--output-dir=runs/x]\n"
      "  train --dataset cifar10 --output-dir runs/cifar10\n"
      "Flags take dashes or underscores; -h or --help lists them.");
  for (const std::string& arg : args) {
    if (arg == "--") break;
    if (arg == "--help") {
      // This binary's flags only: gflags' own --help also lists LibTorch's and glog's.
      gflags::ShowUsageWithFlagsRestrict(argv[0], "tools/train.cc");
      std::exit(0);
    }
  }
  gflags::ParseCommandLineFlags(&normalized_argc, &normalized_argv, /*remove_flags=*/true);
  google::InitGoogleLogging(argv[0]);
  google::InstallFailureSignalHandler();
  if (normalized_argc > 1) {
    std::cerr << "train: error: unexpected argument '" << normalized_argv[1] << "'; see --help"
              << std::endl;
    std::exit(2);
  }
  return args;
}

// `bazel run` starts us in the runfiles tree, where the shipped recipes are; user paths are
// relative to where the user ran bazel. Returns the shipped recipes' folder.
absl::StatusOr<std::string> EnterUserDirectory() {
  std::string recipes_dir = "recipes";
  std::error_code error;
  if (std::filesystem::is_directory("recipes", error)) {
    recipes_dir = std::filesystem::absolute("recipes").string();
  }
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY"); cwd != nullptr) {
    if (chdir(cwd) != 0) return absl::InternalError(absl::StrCat("cannot chdir to ", cwd));
  }
  return recipes_dir;
}

// The options the user gave, for tools::ResolveRecipe to fold into the recipe.
pact::tools::CommandLine CommandLineFromFlags(const pact::dist::DistEnv& env) {
  pact::tools::CommandLine cl;
  cl.recipe = FLAGS_recipe;
  cl.recipe_overrides = FLAGS_recipe_overrides;
  if (IsSet("dataset")) cl.dataset = FLAGS_dataset;
  if (IsSet("model")) cl.model = FLAGS_model;
  if (IsSet("data_root")) cl.data_root = FLAGS_data_root;
  if (IsSet("batch_size")) cl.batch_size = FLAGS_batch_size;
  if (IsSet("workers")) cl.workers = FLAGS_workers;
  if (IsSet("epochs")) cl.epochs = FLAGS_epochs;
  if (IsSet("act_bits")) cl.act_bits = FLAGS_act_bits;
  if (IsSet("w_bits")) cl.w_bits = FLAGS_w_bits;
  cl.quantize_first_last = FLAGS_quantize_first_last;
  if (IsSet("first_last_bits")) cl.first_last_bits = FLAGS_first_last_bits;
  if (IsSet("lambda_alpha")) cl.lambda_alpha = FLAGS_lambda_alpha;
  if (IsSet("quant_warmup_epochs")) cl.quant_warmup_epochs = FLAGS_quant_warmup_epochs;
  if (IsSet("device")) cl.device = FLAGS_device;
  if (IsSet("seed")) cl.seed = FLAGS_seed;
  if (IsSet("threads")) cl.threads = FLAGS_threads;
  if (IsSet("lr")) cl.lr = FLAGS_lr;
  if (IsSet("weight_decay")) cl.weight_decay = FLAGS_weight_decay;
  if (IsSet("momentum")) cl.momentum = FLAGS_momentum;
  if (IsSet("lr_milestones")) cl.lr_milestones = FLAGS_lr_milestones;
  if (IsSet("print_freq")) cl.print_freq = FLAGS_print_freq;
  cl.dist = env;
  return cl;
}

int DryRun(const pact::ValidatedRecipe& recipe) {
  std::cout << "# resolved recipe\n" << pact::ToTextProto(*recipe);
  absl::StatusOr<std::string> summary = pact::train::DryRun(recipe);
  if (!summary.ok()) return Fail(summary.status());
  std::cout << "\n# model\n" << *summary << std::flush;
  return 0;
}

// Re-executes this binary as --nproc_per_node workers, from where we were started.
int LaunchWorkers(const std::vector<std::string>& args, const std::string& launch_dir) {
  pact::dist::LaunchOptions launch;
  launch.nproc_per_node = FLAGS_nproc_per_node;
  launch.nnodes = FLAGS_nnodes;
  launch.node_rank = FLAGS_node_rank;
  launch.args = pact::dist::RemoveFlags(args, {"nproc_per_node", "nnodes", "node_rank"});
  launch.working_directory = launch_dir;
  // Healthy workers fail within the timeout once a peer died; one still running later hangs.
  launch.grace = absl::Seconds(FLAGS_dist_timeout_s) + absl::Seconds(5);
  absl::StatusOr<int> code = pact::dist::RunLocalWorkers(launch);
  if (!code.ok()) return Fail(code.status());
  return *code;
}

// This process's place in the job the environment describes: a group of one, or the c10d
// group it joins.
absl::StatusOr<std::shared_ptr<pact::dist::Collectives>> JoinJob(const pact::dist::DistEnv& env,
                                                                 const pact::Recipe& recipe) {
  if (!env.distributed()) {
    return std::shared_ptr<pact::dist::Collectives>(pact::dist::LocalCollectives());
  }
  if (env.rank != 0) FLAGS_minloglevel = google::GLOG_WARNING;  // rank 0 reports for all
  const bool cuda = recipe.train().device() == pact::DEVICE_CUDA;
  if (cuda) pact::dist::SelectLocalCudaDevice(env);  // before anything touches CUDA
  PACT_ASSIGN_OR_RETURN(pact::dist::Backend backend,
                        pact::dist::ChooseBackend(FLAGS_dist_backend, cuda));
  if (!(FLAGS_dist_timeout_s > 0) || !(FLAGS_dist_bucket_mb > 0)) {
    return absl::InvalidArgumentError("--dist_timeout_s and --dist_bucket_mb must be > 0");
  }
  pact::dist::GroupOptions options;
  options.backend = backend;
  options.timeout = absl::Seconds(FLAGS_dist_timeout_s);
  PACT_ASSIGN_OR_RETURN(std::shared_ptr<pact::dist::ProcessGroup> group,
                        pact::dist::ProcessGroup::Connect(env, options));
  PACT_ASSIGN_OR_RETURN(
      std::unique_ptr<pact::dist::Collectives> collectives,
      pact::dist::GroupCollectives(group, static_cast<int64_t>(FLAGS_dist_bucket_mb * (1 << 20))));
  return std::shared_ptr<pact::dist::Collectives>(std::move(collectives));
}

// The run's log also goes to <output_dir>/train.log.<date>-<time>.<pid> (one per invocation,
// so a resumed run keeps the earlier logs).
void ConfigureRunLog(const std::string& output_dir) {
  if (!pact::MakeDirs(output_dir).ok()) return;  // the trainer reports the folder's error
  FLAGS_logtostderr = false;
  FLAGS_alsologtostderr = true;
  google::SetLogDestination(google::GLOG_INFO, (output_dir + "/train.log.").c_str());
  for (auto severity : {google::GLOG_WARNING, google::GLOG_ERROR, google::GLOG_FATAL}) {
    google::SetLogDestination(severity, "");  // all severities are in the INFO file
  }
  google::SetLogSymlink(google::GLOG_INFO, "");
}

// Appends `line` to the run's log file only (glog's INFO file, in glog's line format), not to
// stderr: on a terminal the trainer draws it there as a bar already.
void LogToFileOnly(const std::string& line) {
  const absl::Time now = absl::Now();
  const std::string text =
      absl::StrCat(absl::FormatTime("I%m%d %H:%M:%E6S ", now, absl::LocalTimeZone()),
                   static_cast<int64_t>(getpid()), " progress] ", line, "\n");
  google::base::GetLogger(google::GLOG_INFO)
      ->Write(/*force_flush=*/false, absl::ToTimeT(now), text.data(), text.size());
}

// --evaluate: the model of --resume or --init-from, evaluated once; nothing is written.
int Evaluate(const pact::ValidatedRecipe& recipe,
             std::shared_ptr<pact::dist::Collectives> collectives) {
  if (FLAGS_resume.empty() == FLAGS_init_from.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--evaluate needs the model to evaluate: --resume=<run folder or checkpoint> or "
        "--init-from=<state dict, checkpoint or run folder> (one of them)"));
  }
  pact::train::TrainerOptions options;
  options.resume = FLAGS_resume;
  options.init_from = FLAGS_init_from;
  options.evaluate_only = true;
  options.collectives = collectives;
  auto trainer = pact::train::Trainer::Create(recipe, options);
  if (!trainer.ok()) return Fail(trainer.status());
  absl::StatusOr<pact::train::EpochMetrics> m = (*trainer)->Evaluate();
  if (!m.ok()) return Fail(m.status());
  if (collectives->is_writer()) {
    std::cout << absl::StrFormat("eval loss %.4f top1 %.2f%% top5 %.2f%%", m->eval_loss(),
                                 m->eval_top1(), m->eval_top5())
              << std::endl;
  }
  return 0;
}

int Train(const pact::ValidatedRecipe& recipe,
          std::shared_ptr<pact::dist::Collectives> collectives) {
  pact::train::TrainerOptions options;
  options.output_dir = pact::tools::OutputDir(FLAGS_output_dir, *recipe);
  options.resume = FLAGS_resume;
  options.init_from = FLAGS_init_from;
  options.overwrite = FLAGS_overwrite;
  options.collectives = collectives;
  // Refuse before the log file or anything else lands in a folder holding another run.
  const absl::Status folder =
      pact::train::CheckRunFolder(options.output_dir, options.resume, options.overwrite);
  if (!folder.ok()) return Fail(folder);
  if (collectives->is_writer()) {
    ConfigureRunLog(options.output_dir);
    options.log_to_file = LogToFileOnly;
  }
  auto trainer = pact::train::Trainer::Create(recipe, options);
  if (!trainer.ok()) return Fail(trainer.status());
  absl::StatusOr<pact::train::RunOutcome> outcome = (*trainer)->Run();
  if (!outcome.ok()) return Fail(outcome.status());
  // Rank 0 hosts the rendezvous store: leave together, once every rank is done.
  const absl::Status done = collectives->Barrier("final barrier");
  if (!done.ok()) return Fail(done);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Malloc tuning shared with //tools:train_benchmark (see TuneProcessForTraining).
  pact::train::TuneProcessForTraining();
  std::error_code cwd_error;
  const std::string launch_dir = std::filesystem::current_path(cwd_error).string();
  const std::vector<std::string> args = ParseFlags(argc, argv);
  if (FLAGS_list) {
    ListComponents();
    return 0;
  }
  absl::StatusOr<std::string> recipes_dir = EnterUserDirectory();
  if (!recipes_dir.ok()) return Fail(recipes_dir.status());
  absl::StatusOr<pact::dist::DistEnv> env = pact::dist::ReadDistEnv();
  if (!env.ok()) return Fail(env.status());
  absl::StatusOr<pact::ValidatedRecipe> recipe =
      pact::tools::ResolveRecipe(CommandLineFromFlags(*env), *recipes_dir);
  if (!recipe.ok()) return Fail(recipe.status());
  if (FLAGS_dry_run) return DryRun(*recipe);
  if (FLAGS_nproc_per_node > 0) return LaunchWorkers(args, launch_dir);
  if (FLAGS_nnodes != 1 || FLAGS_node_rank != 0) {
    return Fail(absl::InvalidArgumentError("--nnodes and --node_rank need --nproc_per_node"));
  }
  HandleStopSignalsOnOneThread();  // before the process group's and the trainer's threads
  absl::StatusOr<std::shared_ptr<pact::dist::Collectives>> collectives = JoinJob(*env, **recipe);
  if (!collectives.ok()) return Fail(collectives.status());
  if (FLAGS_evaluate) return Evaluate(*recipe, *std::move(collectives));
  return Train(*recipe, *std::move(collectives));
}
