"""Generated protobuf and gRPC stubs (`make proto` regenerates them; do not edit)."""
