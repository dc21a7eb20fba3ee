from planning.cli import main

main()
