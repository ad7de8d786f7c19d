fn main() -> std::process::ExitCode {
    h2lab::cli::main()
}
