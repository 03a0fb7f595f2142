from trackflow.cli.main import main

main()
