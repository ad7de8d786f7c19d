fn main() -> std::process::ExitCode {
    h2lab::app::main()
}
