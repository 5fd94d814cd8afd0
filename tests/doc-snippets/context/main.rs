// A snippet that uses `?`: the body of a main returning a Result.
fn main() -> Result<(), Box<dyn std::error::Error>> {
// SNIPPET
    Ok(())
}
