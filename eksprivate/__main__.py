from eksprivate.cli import main

main()
