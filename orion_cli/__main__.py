from orion_cli.entry import main

main()
