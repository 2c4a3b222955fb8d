//! The `rookery` binary: a thin clap front over the library crates; see `cli`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
