using BlkTap.Cli;

return CliApp.Run(args);
