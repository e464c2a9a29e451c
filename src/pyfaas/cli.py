def main() -> None:
    raise SystemExit("pyfaas CLI is being written")
