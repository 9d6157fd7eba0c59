// Compiled into every program of a MERIDIAN_SANITIZE build. Sanitizer reports go to files under
// the build tree, whoever started the process (a test, the sandbox script, a Meridian a test
// spawned), and the sanitizers.reports test fails when any is there: a leak or a bad access in
// a daemon that tests only talk to over the network still fails the run.
#ifndef MERIDIAN_SANITIZER_LOG_DIR
#error "MERIDIAN_SANITIZER_LOG_DIR must name the directory for sanitizer reports"
#endif

extern "C" {

// The runtimes call these before main; the strings live as long as the program.
const char* __asan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "detect_leaks=1:detect_stack_use_after_return=0:strict_string_checks=1:check_initialization_order=1:"
         "log_path=" MERIDIAN_SANITIZER_LOG_DIR "/asan";
}

const char* __ubsan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "print_stacktrace=1:halt_on_error=1:log_path=" MERIDIAN_SANITIZER_LOG_DIR "/ubsan";
}

const char* __lsan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "log_path=" MERIDIAN_SANITIZER_LOG_DIR "/lsan";
}

}  // extern "C"
