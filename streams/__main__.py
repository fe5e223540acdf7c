from streams.cli.entry import main

main()
