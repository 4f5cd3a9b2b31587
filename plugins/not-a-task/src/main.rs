//! A WASI command (`fn main`), which the host must refuse: it does not export `run`.

fn main() {
    println!("I am a command, not a task");
}
