from orion_cli.cli import main

main()
