fn main() {
    print!("{}", crds::crd_yaml());
}
